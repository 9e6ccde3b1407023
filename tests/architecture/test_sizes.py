"""Modules and functions stay small enough to read: no module over ~600 lines and no function over
~80, except where a comment says why (``# long:`` right above the ``def`` or its decorators, or in
a module's first lines for a long module)."""

from __future__ import annotations

import ast

from tests.helpers import REPO_ROOT

MODULE_LINES = 600
FUNCTION_LINES = 80
WHY = "# long:"


def _sources():
    for path in sorted((REPO_ROOT / "pipeline").rglob("*.py")):
        if "migrations" not in path.parts:
            yield path, path.read_text().splitlines()


def _explained(lines: list[str], node: ast.AST) -> bool:
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
    above = lines[max(0, first - 4) : first - 1]
    return any(line.strip().lower().startswith(WHY) for line in above)


def test_no_module_is_too_long_without_a_reason():
    long_modules = [
        f"{path.relative_to(REPO_ROOT)}: {len(lines)} lines"
        for path, lines in _sources()
        if len(lines) > MODULE_LINES
        and not any(line.strip().lower().startswith(WHY) for line in lines[:20])
    ]
    assert not long_modules, "\n".join(long_modules)


def test_no_function_is_too_long_without_a_reason():
    long_functions = []
    for path, lines in _sources():
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > FUNCTION_LINES and not _explained(lines, node):
                    long_functions.append(
                        f"{path.relative_to(REPO_ROOT)}:{node.lineno} {node.name}: {length} lines"
                    )
    assert not long_functions, "\n".join(long_functions)
