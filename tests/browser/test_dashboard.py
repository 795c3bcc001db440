"""The dashboard in real headless Chromium (Debian's), driven by Playwright: log in,
see every site on the map and in the table, see an alarm appear after a site is cut
off, drill down into a site (capacity bars, hosts, alarms, RTT row). Screenshots are
kept in tests/browser/screenshots/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefed.testkit.fleet_process import ProcessFleet

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).parent / "screenshots"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

playwright_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (make system-deps)", allow_module_level=True)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessFleet]:
    f = ProcessFleet(
        root=tmp_path_factory.mktemp("dash"),
        names=["Berlin", "Denver", "Paris"],
        labels={"Berlin": {"region": "eu"}, "Paris": {"region": "eu"}, "Denver": {"region": "us"}},
        extra_config="peer_timeout_seconds = 3.0\n",
    ).start()
    try:
        yield f
    finally:
        f.stop()


def test_login_map_table_alarm_after_cut_and_drill_down(
    fleet: ProcessFleet, tmp_path: Path
) -> None:
    SHOTS.mkdir(exist_ok=True)
    berlin = fleet["Berlin"]
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            args=ARGS,
            headless=True,
            viewport={"width": 1280, "height": 1400},
        )
        try:
            page = browser.new_page()
            page.goto(f"{berlin.url}/dashboard", timeout=30_000)
            page.fill("input[name=password]", berlin.password)
            page.click("#login button[type=submit]")
            page.wait_for_selector("#sites tbody tr.site", timeout=15_000)
            # Locator assertions, not wait_for_function: a string predicate is evaluated
            # with eval, which the dashboard's Content-Security-Policy refuses at times.
            expect = playwright_api.expect
            expect(page.locator("#map circle")).to_have_count(3, timeout=15_000)
            expect(page.locator("#sites tbody tr.site")).to_have_count(3, timeout=15_000)
            names = page.locator("#sites tbody tr.site td:first-child").all_inner_texts()
            assert sorted(names) == ["Berlin", "Denver", "Paris"]
            page.screenshot(path=str(SHOTS / "1-fleet.png"), full_page=True)

            fleet.wan.cut_site("Denver")
            try:
                page.wait_for_selector(
                    "#alarms tbody tr.alarm:has-text('site=Denver')", timeout=15_000
                )
                page.wait_for_selector("#map circle.offline[data-site=Denver]", timeout=15_000)
                page.screenshot(path=str(SHOTS / "2-denver-cut.png"), full_page=True)
            finally:
                fleet.wan.heal_site("Denver")

            page.click("#sites tbody tr.site[data-site=Paris]")
            page.wait_for_selector("#detail:not([hidden])")
            assert "Site Paris" in page.inner_text("#detail-title")
            detail = page.locator("#detail-body")
            # The drill-down renders when the site's report arrives: wait for it.
            expect(detail.locator(".capacity-row")).to_have_count(4, timeout=15_000)
            page.wait_for_selector("#detail-body tr.host", timeout=15_000)
            assert detail.locator("[data-fact=region]").inner_text() == "eu"
            assert detail.locator(".capacity-row").count() == 4  # vCPUs, RAM, disk, volumes
            assert "GB" in detail.locator(".capacity-row[data-resource=Volumes]").inner_text()
            assert "paris-compute-1" in detail.locator("tr.host").first.inner_text()
            page.wait_for_selector("#detail-body .rtt[data-peer=Berlin]", timeout=15_000)
            assert detail.locator(".rtt[data-peer=Denver]").count() == 1
            page.click("#sites th[data-key=name]")  # sort by name, descending after a click
            page.click("#sites th[data-key=name]")
            page.screenshot(path=str(SHOTS / "3-drill-down.png"), full_page=True)
        finally:
            browser.close()
