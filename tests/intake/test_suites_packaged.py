"""A plain (non-editable) `pip install eincome` carries the expectation suites: the package reaches
expectations/ through pipeline/intake/expectations, which the wheel includes as package data."""

from __future__ import annotations

import tomllib

from pipeline.intake import validate
from tests.helpers import REPO_ROOT


def test_the_package_reaches_every_suite_of_expectations_through_its_own_folder():
    link = REPO_ROOT / "pipeline" / "intake" / "expectations"
    assert link.resolve() == (REPO_ROOT / "expectations").resolve()
    suites = sorted(p.name for p in (REPO_ROOT / "expectations").glob("*.json"))
    assert suites and sorted(p.name for p in validate.EXPECTATIONS_DIR.glob("*.json")) == suites


def test_the_wheel_includes_the_suites_as_package_data():
    # Regression: a wheel built from this tree had no expectations/, so every ingest of a plain
    # install failed with "expectation suite ... is missing".
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert (
        "intake/expectations/*.json" in pyproject["tool"]["setuptools"]["package-data"]["pipeline"]
    )
