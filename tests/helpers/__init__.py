"""Test helpers shared across the test packages: data builders, seeds, runners. Fixtures live only
in conftest.py; these are plain functions imported one way (tests -> helpers)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
