"""Names as integer codes, for the transaction signals' many groupings.

The transaction signals and the operators' cash shortfall group, sort and merge the same few
name columns (point, operator, payer) a dozen times per slice. On plain strings every one of
those hashes or compares each Python string again (a third of the signals' time); as a
categorical over the names in sorted order pandas works on small integer codes instead, and
every order by name (a sort, groupby's sorted groups, "the last in name order" of those tied)
stays what it was. The names go back to plain labels where the signals leave (``labelled``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def coded(labels: pd.Series, names: pd.Index | None = None) -> pd.Series:
    """``labels`` as a categorical over its own distinct values in sorted order, or over
    ``names`` (sorted, distinct) when given (labels not among them become missing); missing
    values stay missing."""
    if names is not None:
        return pd.Series(
            pd.Categorical(labels, categories=names), index=labels.index, name=labels.name
        )
    codes, names = pd.factorize(labels, sort=True)
    return pd.Series(
        pd.Categorical.from_codes(codes, categories=names), index=labels.index, name=labels.name
    )


# The type pandas' groupby gives names that came as plain Python objects (a frame concatenated
# with an empty read has object columns): what the signals gave before they were coded.
GROUPED_NAMES = pd.StringDtype("python", na_value=np.nan)


def labelled(frame: pd.DataFrame, kept: dict | None = None) -> pd.DataFrame:
    """``frame`` with every ``coded`` column back to plain labels, typed as a groupby on the
    names gives them (their own string type; object-typed names as ``GROUPED_NAMES``), or as
    ``kept`` says for the columns it names (rows picked out of the names, not grouped by them,
    kept the names' own type)."""
    kept = kept or {}
    types = {}
    for name, dtype in frame.dtypes.items():
        if isinstance(dtype, pd.CategoricalDtype):
            names_type = dtype.categories.dtype
            grouped = GROUPED_NAMES if names_type == np.dtype(object) else names_type
            types[name] = kept.get(name, grouped)
    return frame.astype(types)


def positions_in(table: pd.DataFrame, rows: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """Per row of ``rows`` (its ``keys`` columns ``coded``), the position of the row of ``table``
    (plain labels, each combination of ``keys`` at most once) with the same names; -1 where
    ``table`` has none. One integer per combination, so the lookup never hashes a string of
    ``rows``."""
    table_key = np.zeros(len(table), dtype=np.int64)
    row_key = np.zeros(len(rows), dtype=np.int64)
    known = np.ones(len(table), dtype=bool)
    for key in keys:
        names = rows[key].cat.categories
        # Code 0 is "missing" on both sides; a table name the rows never use matches nothing.
        table_codes = names.get_indexer(table[key]) + 1
        known &= table_codes > 0
        table_key = table_key * (len(names) + 1) + table_codes
        row_key = row_key * (len(names) + 1) + rows[key].cat.codes.to_numpy(np.int64) + 1
    known_at = np.flatnonzero(known)
    found = pd.Index(table_key[known]).get_indexer(row_key)
    positions = np.full(len(rows), -1, dtype=np.int64)
    positions[found >= 0] = known_at[found[found >= 0]]
    return positions
