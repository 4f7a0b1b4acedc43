"""The tests share fixtures through conftest.py and helpers through tests/support/, never through each other."""
from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _is_test_module(name: str) -> bool:
    return any(part.startswith("test_") for part in name.split("."))


def imported_test_modules(source: str) -> list[str]:
    """The ``test_*`` modules that ``source`` imports, however it spells the import."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = [module] if _is_test_module(module) else [f"{module}.{alias.name}".lstrip(".")
                                                               for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [name for name in names if _is_test_module(name)]
    return found


def test_the_check_sees_every_spelling_of_such_an_import():
    assert imported_test_modules("from tests.unit.test_dlq import store") == ["tests.unit.test_dlq"]
    assert imported_test_modules("import tests.e2e.test_dailyup as d") == ["tests.e2e.test_dailyup"]
    assert imported_test_modules("from .test_consumer import MEMORY") == ["test_consumer"]
    assert imported_test_modules("from tests.unit import test_dlq") == ["tests.unit.test_dlq"]
    assert imported_test_modules("from tests.support.queues import take_all\nimport pytest") == []


def test_no_test_or_support_module_imports_a_test_module():
    offenders = {str(path.relative_to(TESTS)): imported for path in sorted(TESTS.rglob("*.py"))
                 if (imported := imported_test_modules(path.read_text(encoding="utf-8")))}
    assert offenders == {}, "share fixtures through conftest.py and helpers through tests/support/"
