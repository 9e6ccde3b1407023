"""Shared units and the one error type: money, times, settings, the leakage vocabulary.

Imports nothing else of eincome."""
