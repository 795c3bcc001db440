"""Sync health as fleet operations read it (services/fleet/sync_health.py), without a
site: the sync report read defensively, and the rules of the ``sync_failing`` and
``sync_conflict`` alarms on a fake clock."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from edgefed.services.fleet.sync_health import (
    FailingSyncRule,
    conflicting_sources,
    read_sync_telemetry,
)


class Port:
    """The ``ctx.sync_status`` port, answering what a test gives it (or raising it)."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def report(self) -> Any:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def read(answer: Any) -> dict[str, Any] | None:
    return read_sync_telemetry(SimpleNamespace(sync_status=Port(answer)))  # type: ignore[arg-type]


def peer(**values: Any) -> dict[str, Any]:
    return {"pending": 0, "failing": 0, "breaker": "closed", "last_error": None, **values}


# -- reading the report ------------------------------------------------------------------------


def test_a_site_without_the_sync_service_has_no_report() -> None:
    assert read_sync_telemetry(SimpleNamespace(sync_status=None)) is None  # type: ignore[arg-type]


def test_missing_figures_read_as_zero_and_peers_come_sorted() -> None:
    report = read({"peers": {"Rome": {}, "Denver": peer(pending="3", failing=1.0)}})
    assert report == {
        "queue_depth": 0,
        "lag_seconds": 0.0,
        "conflicts": 0,
        "conflicts_by_source": {},
        "peers": {
            "Denver": {
                "pending": 3,
                "failing": 1,
                "breaker": "closed",
                "last_error": None,
                "oldest_pending_seconds": 0.0,
                "conflicts": 0,
            },
            "Rome": {
                "pending": 0,
                "failing": 0,
                "breaker": "closed",
                "last_error": None,
                "oldest_pending_seconds": 0.0,
                "conflicts": 0,
            },
        },
    }
    assert list(report["peers"]) == ["Denver", "Rome"]


def test_conflicts_are_counted_per_source_leaving_out_sources_without_any() -> None:
    report = read({"conflicts_by_source": {"Paris": 2, "Central": 3, "Quiet": 0}})
    assert report is not None
    assert report["conflicts_by_source"] == {"Central": 3, "Paris": 2}
    assert list(report["conflicts_by_source"]) == ["Central", "Paris"]
    # Without a total, the total is their sum; a total given is kept.
    assert report["conflicts"] == 5
    assert read({"conflicts": 7, "conflicts_by_source": {"Paris": 2}})["conflicts"] == 7  # type: ignore[index]


@pytest.mark.parametrize(
    "answer",
    [
        RuntimeError("sync engine is restarting"),
        ["not", "a", "mapping"],
        {"peers": {"Rome": "up"}},
        {"peers": {"Rome": peer(breaker="melted")}},
        {"peers": {"Rome": peer(pending="many")}},
        {"conflicts_by_source": ["Paris"]},
    ],
)
def test_a_report_that_fails_or_is_malformed_reads_as_none_and_is_logged(
    answer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="edgefed.fleet.sync"):
        assert read(answer) is None
    assert "the sync service's report failed" in caplog.text


# -- the sync_failing rule ----------------------------------------------------------------------


def report_of(**peers: dict[str, Any]) -> dict[str, Any]:
    made = read({"peers": peers})
    assert made is not None
    return made


def test_an_open_breaker_is_failing_at_once_with_the_figures_and_last_error() -> None:
    rule = FailingSyncRule(threshold_seconds=30.0, now=lambda: 0.0)
    failing = rule.evaluate(
        report_of(
            Denver=peer(
                breaker="open",
                pending=12,
                failing=0,
                oldest_pending_seconds=41.6,
                last_error="connect refused",
            )
        )  # fmt: skip
    )
    assert failing == {
        "Denver": "sync to peer site Denver is failing: its circuit breaker is open; "
        "12 pending, 0 failing, oldest waiting 42 s; last error: connect refused"
    }


def test_failing_deliveries_count_only_once_they_last_the_threshold() -> None:
    clock = [100.0]
    rule = FailingSyncRule(threshold_seconds=30.0, now=lambda: clock[0])
    failing = report_of(Rome=peer(pending=2, failing=2))
    assert rule.evaluate(failing) == {}
    clock[0] = 129.9
    assert rule.evaluate(failing) == {}
    clock[0] = 130.0
    (reason,) = rule.evaluate(failing).values()
    assert "deliveries failing for 30 s; 2 pending, 2 failing" in reason


def test_a_peer_that_drains_its_failures_starts_the_count_again() -> None:
    clock = [0.0]
    rule = FailingSyncRule(threshold_seconds=30.0, now=lambda: clock[0])
    failing, healthy = report_of(Rome=peer(failing=1)), report_of(Rome=peer())
    rule.evaluate(failing)
    clock[0] = 25.0
    assert rule.evaluate(healthy) == {}  # drained: forgotten
    clock[0] = 40.0
    assert rule.evaluate(failing) == {}  # failing again since 40, not since 0
    clock[0] = 69.0
    assert rule.evaluate(failing) == {}
    clock[0] = 70.0
    assert list(rule.evaluate(failing)) == ["Rome"]


def test_peers_are_judged_each_on_its_own_clock() -> None:
    clock = [0.0]
    rule = FailingSyncRule(threshold_seconds=10.0, now=lambda: clock[0])
    rule.evaluate(report_of(Rome=peer(failing=1)))
    clock[0] = 5.0
    both = report_of(Rome=peer(failing=1), Oslo=peer(failing=1))
    rule.evaluate(both)
    clock[0] = 10.0
    assert list(rule.evaluate(both)) == ["Rome"]
    clock[0] = 15.0
    assert sorted(rule.evaluate(both)) == ["Oslo", "Rome"]


def test_a_long_last_error_is_cut_in_the_reason() -> None:
    rule = FailingSyncRule(threshold_seconds=0.0, now=lambda: 0.0)
    (reason,) = rule.evaluate(report_of(Rome=peer(failing=1, last_error="x" * 1000))).values()
    assert reason.endswith("last error: " + "x" * 300)


# -- the sync_conflict rule -----------------------------------------------------------------------


def test_each_clashing_source_is_named_with_its_count_in_words() -> None:
    report = read({"conflicts_by_source": {"Central": 1, "Paris": 4}})
    assert report is not None
    reasons = conflicting_sources(report)
    assert list(reasons) == ["Central", "Paris"]
    assert reasons["Central"].startswith("1 row pushed by sync source Central clash")
    assert reasons["Paris"].startswith("4 rows pushed by sync source Paris clash")
    assert "see 'edgefed sync conflicts' to resolve them" in reasons["Paris"]
    assert conflicting_sources({"conflicts_by_source": {}}) == {}
