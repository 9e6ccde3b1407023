"""The leakage patterns, by the names the detector gives its flags and the simulator plants them."""

LEAKAGE_KINDS = (
    "under_reporting",
    "device_off",
    "cash_skimming",
    "void_abuse",
    "ticket_shaving",
    "split_transactions",
)

# What a case's shortfall_rp measures. The detector estimates sales the devices did not record
# (at a tax point the regency loses only the tax on them); reconciliation measures tax not
# declared, tax not deposited, or cash a collector did not hand in. Amounts of different
# measures are never added together.
SHORTFALL_MEASURES = (
    "sales_not_recorded",
    "tax_not_declared",
    "tax_not_deposited",
    "cash_not_handed_in",
    "unclassified_gap",  # a reconciliation kind this table does not know (kept apart too)
    "no_shortfall",
)
_RECONCILIATION_MEASURES = {
    "declared_below_recorded": "tax_not_declared",
    "deposit_below_declared": "tax_not_deposited",
    "deposit_below_recorded": "cash_not_handed_in",
    "flat_deposits": "cash_not_handed_in",
    "late_deposit": "no_shortfall",  # the money arrived, late: nothing is missing
    "unmatched_deposit": "no_shortfall",
}


def shortfall_measure(origin: str, kind: str, collector_id: str | None = None) -> str:
    """What the shortfall of a case of ``origin`` and ``kind`` measures (one of
    ``SHORTFALL_MEASURES``). A reconciliation ``no_deposit`` is cash not handed in when a
    collector owed it (``collector_id``), tax not deposited when a taxpayer point did."""
    if origin != "reconciliation":
        return "sales_not_recorded"
    if kind == "no_deposit":
        return "cash_not_handed_in" if collector_id else "tax_not_deposited"
    return _RECONCILIATION_MEASURES.get(kind, "unclassified_gap")
