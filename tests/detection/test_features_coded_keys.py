"""Names as integer codes (``coded_keys``) give what the plain names gave: the same groups in
the same order, the same running sums, the same "last in name order" of those tied, the same
lookups, and the names back with the type a groupby on them had."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.testing import assert_frame_equal

from pipeline.detection.features.coded_keys import GROUPED_NAMES, coded, labelled, positions_in

HOUR = pd.Timestamp("2026-03-03 03:00", tz="UTC")


def _sales() -> pd.DataFrame:
    """Sales with names out of order, a missing operator, an empty payer and tied counts."""
    return pd.DataFrame(
        {
            "point_id": ["P2", "P10", "P2", "P1", "P2", "P10", "P1", "P2"],
            "hour_start": [HOUR, HOUR, HOUR, HOUR, HOUR + pd.Timedelta(hours=1), HOUR, HOUR, HOUR],
            "operator_id": ["b", "a", None, "b", "a", "a", "a", "a"],
            "payer_ref": ["x", "", "y", "x", "x", None, "y", "y"],
            "amount": [5000, 7000, 1000, 2500, 3000, 4000, 2500, 6000],
        }
    )


def _coded(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(
        **{name: coded(frame[name]) for name in ("point_id", "operator_id", "payer_ref")}
    )


def test_grouping_by_coded_names_gives_the_plain_names_groups_sums_and_order():
    sales = _sales()
    keys = ["point_id", "hour_start", "operator_id"]
    plain = sales.groupby(keys)["amount"].sum().reset_index()
    by_codes = labelled(_coded(sales).groupby(keys)["amount"].sum().reset_index())
    assert_frame_equal(by_codes, plain, check_exact=True)
    # The missing operator is left out, as with the plain names; "P10" sorts before "P2".
    assert plain["point_id"].tolist() == ["P1", "P1", "P10", "P2", "P2", "P2"]


def test_running_sums_and_the_last_in_name_order_of_those_tied_are_the_same():
    sales, codes = _sales(), _coded(_sales())
    day_keys = ["point_id", "payer_ref"]
    for frame in (sales, codes):
        frame["so_far"] = frame.groupby(day_keys, sort=False)["amount"].cumsum()
    assert_frame_equal(
        labelled(codes), sales.astype({"operator_id": "str", "payer_ref": "str"}), check_exact=True
    )

    def last_in_name_order(frame):
        counts = frame.groupby(["point_id", "payer_ref"]).size().rename("n").reset_index()
        top = counts.sort_values(["point_id", "n", "payer_ref"], kind="stable")
        return top.groupby("point_id").tail(1).reset_index(drop=True)

    tied = last_in_name_order(sales)
    # P1: "x" and "y" once each, the last in name order is "y"; P10: "" once (None is dropped).
    assert tied.set_index("point_id")["payer_ref"].to_dict() == {"P1": "y", "P10": "", "P2": "y"}
    assert_frame_equal(labelled(last_in_name_order(codes)), tied, check_exact=True)


def test_positions_in_finds_what_reindexing_by_the_plain_names_finds():
    usual = pd.DataFrame(
        {
            "point_id": ["P2", "P1", "P2", "P9"],  # P9 trades nowhere in the sales
            "operator_id": ["a", "b", "b", "a"],
            "op_usual_cash": [0.6, 0.5, 0.7, 0.9],
        }
    )
    sales = _sales()
    at = positions_in(usual, _coded(sales), ["point_id", "operator_id"])
    looked_up = np.append(usual["op_usual_cash"].to_numpy(), np.nan)[at]
    reindexed = (
        usual.set_index(["point_id", "operator_id"])["op_usual_cash"]
        .reindex(pd.MultiIndex.from_frame(sales[["point_id", "operator_id"]]))
        .to_numpy()
    )
    np.testing.assert_array_equal(looked_up, reindexed)
    # P10's operator and the missing operator have no usual.
    assert at.tolist() == [2, -1, -1, 1, 0, -1, -1, 0]


def test_names_that_came_as_objects_come_back_typed_as_a_groupby_on_them_gives():
    # A frame concatenated with an empty read has object-typed names.
    sales = _sales().astype({"point_id": object, "operator_id": object})
    grouped = sales.groupby(["point_id", "operator_id"])["amount"].sum().reset_index()
    assert grouped["operator_id"].dtype == GROUPED_NAMES
    by_codes = sales.assign(
        point_id=coded(sales["point_id"]), operator_id=coded(sales["operator_id"])
    )
    by_codes = by_codes.groupby(["point_id", "operator_id"])["amount"].sum().reset_index()
    assert_frame_equal(labelled(by_codes), grouped, check_exact=True)
    # Rows picked out of the names (not grouped by them) keep the names' own type when told.
    kept = labelled(by_codes, kept={"operator_id": object})
    assert kept["operator_id"].dtype == object
    assert kept["point_id"].dtype == GROUPED_NAMES


def test_names_coded_over_given_names_drop_the_ones_not_among_them():
    hours = coded(pd.Series(["P2", "P1", "P2"]))
    sales = coded(pd.Series(["P1", "P7", "P2"]), hours.cat.categories)
    assert sales.cat.codes.tolist() == [0, -1, 1]
    merged = pd.DataFrame({"point_id": sales, "n": [1, 2, 3]}).merge(
        pd.DataFrame({"point_id": hours, "h": [10, 20, 30]}), on="point_id"
    )
    assert labelled(merged)["point_id"].tolist() == ["P1", "P2", "P2"]
