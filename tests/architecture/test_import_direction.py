"""The package tree is the architecture: imports flow one way, from entry points down to the shared
units. This test reads every module's imports (including those inside functions, which are still
dependencies) and fails on any import against the flow, so the house stays this way."""

from __future__ import annotations

import ast

import pytest

from tests.helpers import REPO_ROOT

PACKAGE = REPO_ROOT / "pipeline"

# Lower layers never import higher ones; packages on one layer do not import each other.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"core"}),
    frozenset({"store"}),
    frozenset({"reference"}),
    frozenset({"intake", "casework"}),
    frozenset({"detection", "reconciliation"}),
    frozenset({"review"}),
    # alerts are written in the reader's words and id-ID formats, which live in review
    frozenset({"alerts"}),
    frozenset({"runtime"}),
    frozenset({"cli", "orchestration", "testbed"}),
)
LAYER_OF = {area: level for level, areas in enumerate(LAYERS) for area in areas}
# The test bed is a leaf: production never imports it. Only a CLI command that runs it (simulate,
# evaluate, demo, bench) imports it, inside the command, so no other command ever loads it.
# Entry points wire the layers below them; the DAG files may only reach the pipeline through
# orchestration (their import must stay light for Airflow's DAG processor).
DAG_ALLOWED = frozenset({"orchestration"})


def _module_name(path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _area(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "pipeline" or len(parts) < 2:
        return None
    return "cli" if parts[1] == "__main__" else parts[1]


def _imports(path) -> list[tuple[int, str, bool]]:
    """(line, imported module, whether the import sits inside a function) for every import."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []

    def visit(node, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            lazy = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((child.lineno, alias.name, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                if child.module == "pipeline":
                    names = [f"pipeline.{alias.name}" for alias in child.names]
                else:
                    names = [child.module]
                found.extend((child.lineno, name, in_function) for name in names)
            visit(child, lazy)

    visit(tree, False)
    return found


def _violations() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        if "migrations" in path.parts or module == "pipeline":
            continue
        area = _area(module)
        assert area in LAYER_OF, f"{module}: package {area!r} is in no layer; add it to LAYERS"
        for line, target, in_function in _imports(path):
            target_area = _area(target)
            if target_area is None or target_area == area:
                continue
            where = f"{path.relative_to(REPO_ROOT)}:{line} imports {target}"
            if target_area == "testbed":
                if area != "cli":
                    problems.append(f"{where}: production code never imports the test bed")
                elif not in_function:
                    problems.append(f"{where}: only inside the command that runs the test bed")
            elif LAYER_OF[target_area] >= LAYER_OF[area]:
                problems.append(f"{where}: {area} may not import {target_area} (against the flow)")
    for path in sorted((REPO_ROOT / "dags").glob("*.py")):
        for line, target, _ in _imports(path):
            target_area = _area(target)
            if target_area is not None and target_area not in DAG_ALLOWED:
                problems.append(
                    f"{path.relative_to(REPO_ROOT)}:{line} imports {target}: DAG files go through"
                    " pipeline.orchestration"
                )
    return problems


def test_imports_flow_one_way():
    problems = _violations()
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("source", "target", "allowed"),
    [
        ("pipeline.core.money", "pipeline.store.schema", False),
        ("pipeline.intake.ingest", "pipeline.casework.cases", False),
        ("pipeline.detection.backfill", "pipeline.casework.cases", True),
        ("pipeline.review.app", "pipeline.testbed.simulator", False),
    ],
)
def test_the_rule_itself(source, target, allowed):
    """The layer rule decides as documented (so the main test cannot pass by reading nothing)."""
    low, high = LAYER_OF[_area(target)], LAYER_OF[_area(source)]
    assert (low < high and _area(target) != "testbed") is allowed


def test_every_module_was_read():
    names = {_module_name(p) for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}
    assert {"pipeline.core.errors", "pipeline.intake.ingest", "pipeline.review.app"} <= names
