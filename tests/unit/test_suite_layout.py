"""The suite's own layout: test modules outside packages need unique names.

pytest imports a test file that sits in no package under its bare name; two such files
with one name make the second fail to collect when both land in one worker (which
``--dist loadfile`` decides, so the clash shows only in some runs).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
CONFTEST_IMPORT = re.compile(r"^\s*(from conftest import|import conftest\b)", re.MULTILINE)


def test_test_modules_outside_packages_have_unique_names() -> None:
    seen: dict[str, list[Path]] = defaultdict(list)
    for path in TESTS.rglob("*.py"):
        if path.name != "conftest.py" and not (path.parent / "__init__.py").exists():
            seen[path.name].append(path.relative_to(TESTS))
    clashes = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert clashes == {}


def test_no_test_imports_a_conftest_by_name() -> None:
    # "from conftest import" resolves to whichever conftest module the worker loaded first.
    offenders = [
        path.relative_to(TESTS)
        for path in TESTS.rglob("*.py")
        if CONFTEST_IMPORT.search(path.read_text())
    ]
    assert offenders == []
