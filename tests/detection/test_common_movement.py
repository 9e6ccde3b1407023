"""The day peers' median read as a common movement (``peers.common_movement``): peers that agree
on a drop keep it, a median that sits low because a few noisy peers scatter or leak reads near 1,
and a group whose points move together from day to day (parking in the rain) keeps more of its
median than one whose points hardly do."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.detection.features.peers import (
    COMMON_ORDINARY,
    common_movement,
    peer_median_error,
)


def _one_day(ratios) -> tuple[float, float]:
    """The peers' median and its squared standard error for one group on one day."""
    values = pd.Series(ratios, dtype=float)
    frame = pd.DataFrame(
        {"peer_group": "restaurant|Kota", "revenue_type": "restaurant", "hour_start": 0},
        index=values.index,
    )
    median, error = peer_median_error(frame, values, values.notna(), 3)
    return float(median.iloc[0]), float(error.iloc[0])


def test_peers_that_agree_on_a_drop_keep_it():
    median, error = _one_day([0.48, 0.5, 0.51, 0.49, 0.52, 0.5, 0.47, 0.53, 0.5])
    shrunk = common_movement(np.array([median]), np.array([error]), np.array([COMMON_ORDINARY]))
    assert abs(shrunk[0] - 0.5) < 0.03


def test_a_low_median_of_scattered_peers_reads_near_one():
    # Nine restaurants of a dozen sales a day: two leak, the rest scatter around 1.
    median, error = _one_day([0.55, 0.6, 0.7, 0.8, 0.85, 1.0, 1.1, 1.25, 1.4])
    assert median == 0.85
    shrunk = common_movement(np.array([median]), np.array([error]), np.array([COMMON_ORDINARY]))
    assert shrunk[0] > 0.95


def test_a_group_that_moves_together_from_day_to_day_keeps_more_of_its_median():
    median, error = _one_day([0.55, 0.6, 0.7, 0.8, 0.85, 1.0, 1.1, 1.25, 1.4])
    quiet, weather = common_movement(
        np.array([median, median]), np.array([error, error]), np.array([COMMON_ORDINARY, 0.2])
    )
    assert weather < quiet - 0.04
    assert 0.85 <= weather < 0.95


def test_without_an_error_the_median_stands():
    shrunk = common_movement(np.array([0.7]), np.array([np.nan]), np.array([COMMON_ORDINARY]))
    assert shrunk[0] == 0.7
