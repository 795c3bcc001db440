"""Evaluating scope expressions: who is called, in which order, concurrently, and who wins.

Calls are fakes at the evaluator's seam (``call(site)``); concurrency is shown with
events (a call that can only finish once its siblings started), never with timing.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefed.core.scope import Alt, Both, Expr, Site, parse_expr
from edgefed.core.scope_eval import Outcome, evaluate
from edgefed.core.scope_resolve import ScopeResolutionError, StaticFleetView, resolve_expr

SITES = ["A", "B", "C", "D", "E"]
FLEET = StaticFleetView(sites=SITES, labels={s: {"tier": "edge"} for s in "BC"})
BOUND = 5.0  # seconds: a deadlock shows up as a failure, never as a hang


class FakeSites:
    """A fake of the router's per-site call: each site answers ok, fails, or raises."""

    def __init__(self, *, failing: Iterable[str] = (), raising: Iterable[str] = ()) -> None:
        self.failing = set(failing)
        self.raising = set(raising)
        self.calls: list[str] = []
        self.started: dict[str, asyncio.Event] = {}
        self.release: dict[str, asyncio.Event] = {}
        self.cancelled: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def hold(self, *sites: str) -> None:
        """Calls to these sites wait until ``release[site]`` is set."""
        for site in sites:
            self.release[site] = asyncio.Event()

    async def __call__(self, site: str) -> str:
        self.calls.append(site)
        self.started.setdefault(site, asyncio.Event()).set()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if site in self.release:
                await self.release[site].wait()
            else:
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            self.cancelled.append(site)
            raise
        finally:
            self.in_flight -= 1
        if site in self.raising:
            raise ConnectionError(f"{site} is unreachable")
        return f"{site}:{'bad' if site in self.failing else 'ok'}"


def failed(result: str) -> bool:
    return result.endswith(":bad")


async def run(text: str, sites: FakeSites, **options: object) -> Outcome[str]:
    return await asyncio.wait_for(
        evaluate(parse_expr(text), FLEET, sites, failed=failed, **options),  # type: ignore[arg-type]
        BOUND,
    )


async def test_single_site() -> None:
    outcome = await run("A", FakeSites())
    assert outcome.succeeded and outcome.results == ["A:ok"] and outcome.winning_sites == ("A",)


async def test_fallback_stops_at_the_first_success() -> None:
    sites = FakeSites()
    outcome = await run("A|B|C", sites)
    assert sites.calls == ["A"]
    assert outcome.winning_sites == ("A",) and [a.site for a in outcome.attempts] == ["A"]


async def test_fallback_on_transport_error() -> None:
    sites = FakeSites(raising="A")
    outcome = await run("A|B|C", sites)
    assert sites.calls == ["A", "B"]
    assert outcome.succeeded and outcome.winning_sites == ("B",)
    first = outcome.attempts[0]
    assert not first.ok and isinstance(first.error, ConnectionError)
    assert first.describe() == "A: ConnectionError: A is unreachable"


async def test_fallback_on_failed_result() -> None:
    sites = FakeSites(failing="AB")
    outcome = await run("A|B|C", sites)
    assert sites.calls == ["A", "B", "C"] and outcome.results == ["C:ok"]
    assert [a.describe() for a in outcome.failures] == ["A: failed", "B: failed"]


async def test_all_alternatives_failing_lists_every_site() -> None:
    outcome = await run("A|B", FakeSites(failing="A", raising="B"))
    assert not outcome.succeeded and outcome.winners == ()
    assert [(a.site, a.ok) for a in outcome.attempts] == [("A", False), ("B", False)]


async def test_parallel_calls_run_concurrently() -> None:
    sites = FakeSites()
    sites.hold("A", "B", "C")

    async def release_once_all_started() -> None:
        for site in "ABC":
            await sites.started.setdefault(site, asyncio.Event()).wait()
        for site in "ABC":
            sites.release[site].set()

    releaser = asyncio.create_task(release_once_all_started())
    outcome = await run("A&B&C", sites)
    await releaser
    assert outcome.succeeded and outcome.results == ["A:ok", "B:ok", "C:ok"]
    assert sites.max_in_flight == 3


async def test_parallel_failure_waits_for_every_site_by_default() -> None:
    sites = FakeSites(failing="A")
    outcome = await run("A&B&C", sites)
    assert not outcome.succeeded
    assert sorted(sites.calls) == ["A", "B", "C"] and sites.cancelled == []
    assert [(a.site, a.ok) for a in outcome.attempts] == [("A", False), ("B", True), ("C", True)]


async def test_fail_fast_cancels_the_sites_still_running() -> None:
    sites = FakeSites(raising="A")
    sites.hold("B")  # never released: only cancellation can end it
    outcome = await run("A&B", sites, fail_fast=True)
    assert not outcome.succeeded and sites.cancelled == ["B"]
    assert [a.describe() for a in outcome.attempts] == [
        "A: ConnectionError: A is unreachable",
        "B: cancelled",
    ]


async def test_or_of_and_does_not_touch_the_group_when_the_first_site_answers() -> None:
    # OpenStackoïd evaluated B&C of "A | B & C" before A.
    sites = FakeSites()
    outcome = await run("A | B & C", sites)
    assert sites.calls == ["A"] and outcome.winning_sites == ("A",)


async def test_failed_group_under_or_falls_back_instead_of_crashing() -> None:
    # OpenStackoïd crashed on a failed "&" under "|".
    sites = FakeSites(raising="A")
    outcome = await run("(A&B)|C", sites)
    assert outcome.succeeded and outcome.winning_sites == ("C",)
    assert [a.site for a in outcome.attempts] == ["A", "B", "C"]


async def test_or_then_group() -> None:
    outcome = await run("A|(B&C)", FakeSites(failing="A"))
    assert outcome.succeeded and outcome.winning_sites == ("B", "C")


async def test_group_of_fallbacks() -> None:
    sites = FakeSites(raising="A")
    outcome = await run("(A|B)&C", sites)
    assert outcome.succeeded and outcome.winning_sites == ("B", "C")
    assert [a.site for a in outcome.attempts] == ["A", "B", "C"]


async def test_a_site_named_in_several_branches_is_called_once() -> None:
    sites = FakeSites(raising="A")
    outcome = await run("(A|B)&(B|C)", sites)
    assert sorted(sites.calls) == ["A", "B"]  # C is not needed: B answered for both
    assert outcome.succeeded and outcome.winning_sites == ("B",)
    assert [a.site for a in outcome.attempts] == ["A", "B"]


async def test_a_shared_call_is_reused_by_a_later_alternative() -> None:
    sites = FakeSites(failing="B")
    outcome = await run("(A&B)|(A&C)", sites)
    assert sorted(sites.calls) == ["A", "B", "C"]  # A created once, not twice
    assert outcome.winning_sites == ("A", "C")


async def test_a_site_cancelled_by_fail_fast_is_called_again_when_named_later() -> None:
    calls: list[str] = []

    async def call(site: str) -> str:
        calls.append(site)
        if site == "A":
            raise ConnectionError("A is unreachable")
        if calls.count("B") == 1:
            await asyncio.Event().wait()  # the first call to B hangs until cancelled
        return f"{site}:ok"

    outcome = await asyncio.wait_for(
        evaluate(parse_expr("(A&B)|B"), FLEET, call, failed=failed, fail_fast=True), BOUND
    )
    assert calls.count("B") == 2 and outcome.winning_sites == ("B",)
    assert [a.describe() for a in outcome.attempts] == [
        "A: ConnectionError: A is unreachable",
        "B: cancelled",
        "B: ok",
    ]


async def test_selectors_run_on_every_matching_site() -> None:
    outcome = await run("@tier=edge", FakeSites())
    assert outcome.winning_sites == ("B", "C")


async def test_cancelling_the_evaluation_cancels_every_call() -> None:
    sites = FakeSites()
    sites.hold("A", "B")
    task = asyncio.create_task(evaluate(parse_expr("A&B"), FLEET, sites, failed=failed))
    await asyncio.wait_for(sites.started.setdefault("B", asyncio.Event()).wait(), BOUND)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(sites.cancelled) == ["A", "B"] and sites.in_flight == 0


async def test_max_parallel_bounds_the_calls_in_flight() -> None:
    sites = FakeSites()
    outcome = await run("*", sites, max_parallel=2)
    assert outcome.succeeded and len(sites.calls) == 5 and sites.max_in_flight <= 2


async def test_unknown_site_fails_before_any_call() -> None:
    sites = FakeSites()
    with pytest.raises(ScopeResolutionError):
        await run("A|Nowhere", sites)
    assert sites.calls == []


# --- properties against a reference model -------------------------------------------------

resolved_exprs: st.SearchStrategy[Expr] = st.recursive(
    st.sampled_from(SITES).map(Site),
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: Both(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: Alt(tuple(xs))),
    ),
    max_leaves=8,
)


def model(expr: Expr, good: set[str], calls: Counter[str]) -> bool:
    """The reference semantics, written the obvious sequential way."""
    if isinstance(expr, Site):
        calls[expr.name] = 1  # a site is called at most once per evaluation
        return expr.name in good
    if isinstance(expr, Both):
        return all([model(p, good, calls) for p in expr.parts])  # every part runs
    assert isinstance(expr, Alt)
    return any(model(o, good, calls) for o in expr.options)  # stops at the first success


def run_sync(expr: Expr, sites: FakeSites, **options: object) -> Outcome[str]:
    async def main() -> Outcome[str]:
        return await asyncio.wait_for(
            evaluate(expr, FLEET, sites, failed=failed, **options),  # type: ignore[arg-type]
            BOUND,
        )

    return asyncio.run(main())


@settings(max_examples=200, deadline=2000)
@given(resolved_exprs, st.sets(st.sampled_from(SITES)))
def test_evaluation_matches_the_reference_model(expr: Expr, good: set[str]) -> None:
    resolved = resolve_expr(expr, FLEET)  # what actually runs (deduplicated)
    expected_calls: Counter[str] = Counter()
    expected = model(resolved, good, expected_calls)
    sites = FakeSites(failing=set(SITES) - good)
    outcome = run_sync(expr, sites)
    assert outcome.succeeded == expected
    assert Counter(sites.calls) == expected_calls
    assert all(a.ok for a in outcome.winners)
    assert outcome.succeeded == bool(outcome.winners)


@settings(max_examples=100, deadline=2000)
@given(st.lists(st.sampled_from(SITES), min_size=2, max_size=5, unique=True), st.data())
def test_fallback_never_calls_past_the_first_success(order: list[str], data: st.DataObject) -> None:
    good = data.draw(st.sets(st.sampled_from(order)))
    sites = FakeSites(failing=set(order) - good)
    outcome = run_sync(Alt(tuple(Site(s) for s in order)), sites)
    first_good = next((i for i, s in enumerate(order) if s in good), None)
    expected_calls = order if first_good is None else order[: first_good + 1]
    assert sites.calls == expected_calls
    assert outcome.winning_sites == (() if first_good is None else (order[first_good],))


@settings(max_examples=50, deadline=2000)
@given(st.lists(st.sampled_from(SITES), min_size=2, max_size=5, unique=True))
def test_every_member_of_a_group_starts_before_any_finishes(members: list[str]) -> None:
    async def main() -> Outcome[str]:
        sites = FakeSites()
        sites.hold(*members)

        async def release_when_all_started() -> None:
            for s in members:
                await sites.started.setdefault(s, asyncio.Event()).wait()
            for s in members:
                sites.release[s].set()

        releaser: asyncio.Task[None] = asyncio.create_task(release_when_all_started())
        expr = Both(tuple(Site(s) for s in members))
        outcome = await asyncio.wait_for(evaluate(expr, FLEET, sites, failed=failed), BOUND)
        await releaser
        return outcome

    outcome = asyncio.run(main())
    assert outcome.winning_sites == tuple(members)


@settings(max_examples=150, deadline=2000)
@given(resolved_exprs, st.sets(st.sampled_from(SITES)), st.sets(st.sampled_from(SITES)))
def test_fail_fast_changes_the_cost_never_the_verdict(
    expr: Expr, good: set[str], raising: set[str]
) -> None:
    bad = set(SITES) - good
    patient = run_sync(expr, FakeSites(failing=bad - raising, raising=bad & raising))
    hasty = run_sync(expr, FakeSites(failing=bad - raising, raising=bad & raising), fail_fast=True)
    assert hasty.succeeded == patient.succeeded
    assert hasty.winning_sites == patient.winning_sites
    assert all(a.ok for a in hasty.winners)
