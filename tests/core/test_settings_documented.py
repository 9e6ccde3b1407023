"""Every setting of the registry is in the README's settings table, with its default."""

from __future__ import annotations

from pipeline.core.settings import SETTINGS
from tests.helpers import REPO_ROOT


def test_every_setting_is_documented_with_its_default():
    readme = (REPO_ROOT / "README.md").read_text()
    missing = []
    for setting in SETTINGS:
        shown = f"`{setting.default}`" if setting.default else "(empty)"
        if f"| `{setting.env}` | {shown} |" not in readme:
            missing.append(f"{setting.env} (default {shown})")
    assert not missing, "README settings table lacks: " + ", ".join(missing)
