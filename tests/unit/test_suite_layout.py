"""The suite's own layout: test modules outside packages need unique names.

pytest imports a test file that sits in no package under its bare name; two such files
with one name make the second fail to collect when both land in one worker (which
``--dist loadfile`` decides, so the clash shows only in some runs).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


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
        if path != Path(__file__).resolve()
        and "from conftest import" in path.read_text()
        or "import conftest" in path.read_text()
    ]
    assert offenders == []
