"""eincome: e-income revenue monitoring for local governments.

Stages live in their own modules: feeds (parse), validate, store, ingest, aggregate,
features, detect, review, reconcile, sources, simulate. Entry points (CLI, DAGs, web) are thin.
"""

__version__ = "0.1.0"

# pandas 3 stores its inferred "str" columns in pyarrow when pyarrow is installed (it is, for the
# Arrow + ADBC ingest). Those columns refuse text that is not valid Unicode (a lone surrogate
# from JSON "\ud800"), which the validator must see to quarantine, and they change how every
# stage's string columns behave. Keep the python-backed storage every stage was written for;
# Arrow is used where it is chosen explicitly (feeds, bulk writes).
import pandas as _pd  # noqa: E402

_pd.set_option("mode.string_storage", "python")
