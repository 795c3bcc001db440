"""What an aggregation adds up: which report of a site wins, the totals over reports
(unreachable sites add nothing), a slow link marking an answering site degraded."""

from __future__ import annotations

from typing import Any

from edgefed.services.fleet.aggregate import Aggregate, _with_link_health
from edgefed.services.fleet.health import Condition, PeerHealth
from edgefed.services.fleet.report import totals


def report(name: str, *, by: str | None = None, status: str = "online", **over: Any) -> Any:
    base: dict[str, Any] = {
        "name": name,
        "reported_by": by or name,
        "status": status,
        "reason": "answering",
        "capacity": {
            "vcpus": {"total": 8, "used": 2, "percent": 25.0},
            "ram_mb": {"total": 1000, "used": 500, "percent": 50.0},
            "disk_gb": {"total": 100, "used": 0, "percent": 0.0},
        },
        "servers": {"total": 3, "by_state": {"active": 2, "error": 1}},
        "alarms": {"critical": 1, "major": 0, "minor": 2, "warning": 0},
        "hosts": 2,
    }
    base.update(over)
    return base


def unreachable(name: str, by: str) -> Any:
    return report(
        name, by=by, status="offline", capacity=None, servers=None, alarms=None, hosts=None
    )


def test_a_sites_own_report_wins_over_what_an_aggregator_says_of_it() -> None:
    agg = Aggregate(reporter="Central", scope="*")
    agg.offer(unreachable("Paris", by="EuHub"))
    agg.offer(report("Paris"))
    agg.offer(unreachable("Paris", by="Central"))  # arrives later, still loses
    assert agg.reports["Paris"]["reported_by"] == "Paris"
    # Between two second-hand reports, the first stays.
    agg.offer(unreachable("Rome", by="EuHub"))
    agg.offer(unreachable("Rome", by="Central"))
    assert agg.reports["Rome"]["reported_by"] == "EuHub"


def test_totals_sum_what_reported_sites_said() -> None:
    sums = totals([report("Paris"), report("Rome", status="degraded"), unreachable("Oslo", "X")])
    assert sums["sites"] == 3
    assert sums["by_status"] == {"online": 1, "degraded": 1, "offline": 1}
    assert sums["capacity"]["vcpus"] == {"total": 16, "used": 4, "percent": 25.0}
    assert sums["capacity"]["ram_mb"]["percent"] == 50.0
    assert sums["capacity"]["disk_gb"]["percent"] == 0.0
    assert sums["servers"] == {"total": 6, "by_state": {"active": 4, "error": 2}}
    assert sums["alarms"] == {"critical": 2, "major": 0, "minor": 4, "warning": 0}
    assert sums["hosts"] == 4


def test_totals_of_nothing_are_zeros_without_dividing_by_zero() -> None:
    sums = totals([])
    assert sums["sites"] == 0
    assert sums["capacity"]["vcpus"] == {"total": 0, "used": 0, "percent": 0.0}
    assert sums["by_status"] == {c.value: 0 for c in Condition}


def test_totals_keep_a_status_or_resource_they_did_not_expect() -> None:
    odd = report("Paris", status="maintenance")
    odd["capacity"]["gpus"] = {"total": 4, "used": 1, "percent": 25.0}
    sums = totals([odd])
    assert sums["by_status"]["maintenance"] == 1
    assert sums["capacity"]["gpus"] == {"total": 4, "used": 1, "percent": 25.0}


def test_an_answering_site_behind_a_slow_link_is_shown_degraded_with_the_reason() -> None:
    slow = PeerHealth("Paris", Condition.DEGRADED, "RTT 800 ms is above 500 ms", 1.0, 800.0)
    marked = _with_link_health(report("Paris"), slow)
    assert (marked["status"], marked["reason"]) == ("degraded", "RTT 800 ms is above 500 ms")
    # Only that site's own report, and only when it says online.
    assert _with_link_health(report("Rome"), slow)["status"] == "online"
    worse = report("Paris", status="degraded", reason="alarms")
    assert _with_link_health(worse, slow)["reason"] == "alarms"
    assert _with_link_health(report("Paris"), None)["status"] == "online"
