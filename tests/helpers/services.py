"""What a test does when a service it needs is missing."""

from __future__ import annotations

import os

import pytest


def service_missing(reason: str) -> None:
    """Skip on a user's machine; fail under CI, where every service must be present."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)
