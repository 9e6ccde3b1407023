"""Rupiah as people read it. Money is whole rupiah in integers everywhere; this is only its face."""

from __future__ import annotations

import re
from numbers import Real

MISSING = "–"
_TYPED_RUPIAH = re.compile(r"^(rp\.?)?\s*\d{1,3}([.,\s]?\d{3})*$|^(rp\.?)?\s*\d{1,15}$")


def group_thousands(value: Real) -> str:
    """1234567 -> '1.234.567': Indonesian digit grouping, no currency sign (tables, CSV-like text)."""
    return f"{int(round(value)):,}".replace(",", ".")


def rupiah(value: Real | None) -> str:
    """1234567 -> 'Rp 1.234.567'; None -> '–'. Fractions are rounded to whole rupiah."""
    if value is None:
        return MISSING
    sign = "-" if value < 0 else ""
    return f"{sign}Rp {group_thousands(abs(value))}"


def rupiah_short(value: Real | None) -> str:
    """Compact rupiah for narrow tables: 12194000 -> 'Rp 12,2 jt' (juta), 850000 -> 'Rp 850 rb'."""
    if value is None:
        return MISSING
    for size, unit in ((1e12, "T"), (1e9, "M"), (1e6, "jt"), (1e3, "rb")):
        if abs(value) >= size:
            return f"Rp {value / size:.1f} {unit}".replace(".", ",").replace(",0 ", " ")
    return rupiah(value)


def typed_rupiah(text: str) -> int | None:
    """Whole rupiah as a person types it (a form, a spreadsheet cell): ``1500000``,
    ``1.500.000``, ``Rp 1.500.000``; None when it is not that (a fraction, a sign, words)."""
    value = text.strip().lower()
    if not _TYPED_RUPIAH.match(value) or len(value) > 24:
        return None
    return int(re.sub(r"\D", "", value))
