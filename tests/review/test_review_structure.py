"""The review app's imports flow one way: app -> routes -> deps -> pipeline; the test bed is
never imported by it (a cycle between app.py and routes.py is what this pins)."""

from __future__ import annotations

import ast
from pathlib import Path

import pipeline.review

REVIEW = Path(pipeline.review.__file__).parent


def _imports(module: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(module.read_text(), str(module))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_only_the_package_face_imports_app_and_routers_never_import_app():
    for module in sorted(REVIEW.rglob("*.py")):
        if module.name == "__init__.py" and module.parent == REVIEW:
            continue  # the package's public face re-exports create_app and serve
        imported = _imports(module)
        assert "pipeline.review.app" not in imported, f"{module.relative_to(REVIEW)} imports app"


def test_deps_and_queries_import_no_router():
    for module in [REVIEW / "deps.py", *sorted((REVIEW / "queries").glob("*.py"))]:
        routers = {name for name in _imports(module) if name.startswith("pipeline.review.routes")}
        assert not routers, f"{module.relative_to(REVIEW)} imports {routers}"


def test_the_review_app_never_imports_the_test_bed():
    for module in sorted(REVIEW.rglob("*.py")):
        testbed = {name for name in _imports(module) if name.startswith("pipeline.testbed")}
        assert not testbed, f"{module.relative_to(REVIEW)} imports {testbed}"
