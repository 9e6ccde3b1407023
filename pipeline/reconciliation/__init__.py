"""Reconciliation of sales recorded vs tax declared vs money deposited."""
