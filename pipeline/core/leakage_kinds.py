"""The leakage patterns, by the names the detector gives its flags and the simulator plants them."""

LEAKAGE_KINDS = (
    "under_reporting",
    "device_off",
    "cash_skimming",
    "void_abuse",
    "ticket_shaving",
    "split_transactions",
)
