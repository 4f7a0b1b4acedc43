"""Each page's template helpers are app-wide (``app_context_processor``): no two pages may give one name."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PAGES = Path(__file__).resolve().parents[2] / "dashboard" / "pages"


def helper_names(source: str) -> list[str]:
    """The names a module's ``@bp.app_context_processor`` functions return in their dict literal."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and any(
                isinstance(d, ast.Attribute) and d.attr == "app_context_processor" for d in node.decorator_list):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Return) and isinstance(inner.value, ast.Dict):
                    names += [k.value for k in inner.value.keys if isinstance(k, ast.Constant)]
    return names


def test_the_check_reads_the_names_a_page_gives():
    source = '@bp.app_context_processor\ndef labels():\n    return {"a_label": f, "b": g}\n'
    assert helper_names(source) == ["a_label", "b"]


def test_no_two_pages_give_a_template_helper_the_same_name():
    given: dict[str, list[str]] = defaultdict(list)
    for module in sorted(PAGES.glob("*.py")):
        for name in helper_names(module.read_text(encoding="utf-8")):
            given[name].append(module.name)
    assert len(given) > 5
    assert {name: pages for name, pages in given.items() if len(pages) > 1} == {}
