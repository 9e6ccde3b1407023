"""What each case's shortfall measures (core.leakage_kinds.shortfall_measure)."""


def test_every_reconciliation_kind_has_a_shortfall_measure():
    """Lost sales (the detector) and lost tax (reconciliation) are different money: each case's
    shortfall says which it is, so no total adds the two."""
    from pipeline.core.leakage_kinds import SHORTFALL_MEASURES, shortfall_measure
    from pipeline.reconciliation.gaps import KINDS

    assert shortfall_measure("detector", "under_reporting") == "sales_not_recorded"
    assert shortfall_measure("reconciliation", "declared_below_recorded") == "tax_not_declared"
    assert shortfall_measure("reconciliation", "deposit_below_declared") == "tax_not_deposited"
    assert shortfall_measure("reconciliation", "no_deposit") == "tax_not_deposited"
    assert shortfall_measure("reconciliation", "no_deposit", "C07") == "cash_not_handed_in"
    for kind in KINDS:
        assert shortfall_measure("reconciliation", kind) in SHORTFALL_MEASURES
        assert shortfall_measure("reconciliation", kind) != "unclassified_gap", kind
