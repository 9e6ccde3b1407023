"""A model saved before the detector moved (pipeline.detect -> pipeline.detection.detector) still
loads through the model store, and scores exactly as it did when it was saved."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import insert

from pipeline.detection.detector import LeakageDetector
from pipeline.detection.features import FEATURES
from pipeline.detection.model_store import load_model
from pipeline.store import connect
from pipeline.store.schema import detector_models
from tests.helpers import REPO_ROOT

LEGACY = REPO_ROOT / "tests" / "data" / "legacy_model"
VERSION = "m0001-20250101-20250201"


def test_a_model_saved_under_the_old_class_path_loads_and_scores_the_same(tmp_path):
    engine = connect(f"sqlite:///{tmp_path / 'eincome.db'}")
    shutil.copy(LEGACY / f"{VERSION}.skops", tmp_path / f"{VERSION}.skops")
    meta = {"version": VERSION, "features": list(FEATURES), "feature_config": {}, "libraries": {}}
    with engine.begin() as connection:
        connection.execute(
            insert(detector_models).values(
                version=VERSION,
                created_at=datetime(2025, 2, 1, tzinfo=UTC),
                path=str(tmp_path / f"{VERSION}.skops"),
                trained_from=datetime(2025, 1, 1, tzinfo=UTC),
                trained_to=datetime(2025, 2, 1, tzinfo=UTC),
                meta=json.dumps(meta),
            )
        )
    stored = load_model(engine, tmp_path)
    assert isinstance(stored.detector, LeakageDetector)
    sample = pd.read_csv(LEGACY / "sample_X.csv")
    expected = np.loadtxt(LEGACY / "sample_scores.txt")
    np.testing.assert_allclose(stored.detector.score_samples(sample), expected)
    engine.dispose()
