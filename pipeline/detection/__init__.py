"""Leakage detection: features, the IsolationForest detector, the model store, backfill and scoring."""
