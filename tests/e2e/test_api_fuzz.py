"""Property-based API fuzz: schemathesis over the site's own OpenAPI document.

Every operation the site documents is called with generated path parameters, query
strings and bodies (bounded: a few examples each), authenticated as admin, against a
real site process. Whatever the input, the answer is never a 5xx.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from edgefed.testkit.fleet_process import password_token
from edgefed.testkit.process import SiteProcess

pytestmark = pytest.mark.e2e

EXAMPLES_PER_OPERATION = 8


@pytest.fixture(scope="module")
def fuzz_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteProcess]:
    site = SiteProcess(name="Fuzz", data_dir=tmp_path_factory.mktemp("fuzz")).start()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture(scope="module")
def fuzz_token(fuzz_site: SiteProcess) -> str:
    return password_token(fuzz_site.url, fuzz_site.password)


def test_no_input_gets_a_5xx(fuzz_site: SiteProcess, fuzz_token: str) -> None:
    # schemathesis' pytest plugin does not support pytest 9 yet: run hypothesis per operation.
    schema = schemathesis.openapi.from_url(f"{fuzz_site.url}/openapi.json")
    server_errors: list[str] = []
    statuses: Counter[int] = Counter()
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def call(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(
                base_url=fuzz_site.url, headers={"X-Auth-Token": fuzz_token}, timeout=30
            )
            statuses[response.status_code // 100 * 100] += 1
            if response.status_code >= 500:
                server_errors.append(
                    f"{case.method} {case.formatted_path} {case.query or ''} "
                    f"-> {response.status_code}: {response.text[:300]}"
                )

        call()
    print(f"fuzzed {operations} operations: {dict(statuses)}")
    assert operations > 50, f"only {operations} operations documented"
    assert not server_errors, "\n".join(server_errors[:20])
    # The fuzz must get past authentication and validation often enough to mean something.
    assert statuses[200] > operations // 2, dict(statuses)


def test_openapi_document_is_served(fuzz_site: SiteProcess) -> None:
    doc = httpx.get(f"{fuzz_site.url}/openapi.json", timeout=30).json()
    assert doc["openapi"].startswith("3.")
    assert any(p.startswith("/identity/v3") for p in doc["paths"])
    assert any(p.startswith("/image/v2") for p in doc["paths"])
