"""eincome: e-income revenue monitoring for local governments.

Stages live in their own modules: feeds (parse), validate, store, ingest, aggregate,
features, detect, review, reconcile, sources, simulate. Entry points (CLI, DAGs, web) are thin.
"""

__version__ = "0.1.0"
