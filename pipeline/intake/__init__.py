"""Feeds in: pull sources, parse, validate (Great Expectations), store with lineage, aggregate."""
