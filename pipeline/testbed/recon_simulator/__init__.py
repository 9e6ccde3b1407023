"""Simulated returns, bank statement and collector deposits, with labelled gaps of each pattern.

The simulator proper (``pipeline.testbed.simulator``) writes ``points.csv`` and ``feeds/*.csv``;
this package reads any such folder (or, given none, writes a small one of its own) and adds what
the taxpayers declared and what reached the treasury:

* ``returns.csv``            point_id, period_start, period_end, declared_sales, tax_due,
                             filed_at, return_ref
* ``bank_statement.csv``     line_id, booked_on, value_date, description, debit, credit,
                             balance, channel, point_id, collector_id  (one treasury account)
* ``collector_deposits.csv`` collector_id, day, cash_amount, deposited_on, point_id, receipt_ref
* ``recon_labels.csv``       pattern, subject, point_id, start, end  (end inclusive; pattern
                             ``clean`` marks a subject and span where nothing was planted)

The parts: ``transactions`` (what the books are built on), ``books`` (the books and their planted
gaps, ``simulate_recon``) and ``evaluation`` (reconcile them and score the cases).
"""

from pipeline.testbed.recon_simulator.books import (
    COLLECTOR_PATTERNS,
    PATTERNS,
    TAX_PATTERNS,
    ReconManifest,
    simulate_recon,
)
from pipeline.testbed.recon_simulator.evaluation import (
    evaluate_reconciliation,
    load_books,
    load_transactions,
    reconcile_simulation,
    score_cases,
)
from pipeline.testbed.recon_simulator.transactions import read_books, write_small_books

__all__ = [
    "COLLECTOR_PATTERNS",
    "PATTERNS",
    "TAX_PATTERNS",
    "ReconManifest",
    "evaluate_reconciliation",
    "load_books",
    "load_transactions",
    "read_books",
    "reconcile_simulation",
    "score_cases",
    "simulate_recon",
    "write_small_books",
]
