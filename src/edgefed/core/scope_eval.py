"""Running one call per site as a scope expression says: fall back on ``|``, fan out on ``&``.

The evaluator is generic and pure asyncio: it never sees HTTP. The router gives it a
``call(site)`` coroutine (forward the request to that site) and a ``failed(result)``
predicate (a 5xx or a 404 is a failure); the evaluator decides which sites are called,
in which order, and which results win. That keeps the semantics testable without a
network, and the router free of expression logic.

Semantics (the ones OpenStackoïd got wrong are marked):

- ``A|B``: call A; if it raised (transport error, timeout) or ``failed`` says so, call
  B; the first success wins and later alternatives are *never* called. Alternatives
  are tried strictly left to right, even when one is a parallel group
  (OpenStackoïd evaluated ``B&C`` of ``A|B&C`` before A).
- ``A&B``: every member starts at once (wall time is the slowest, not the sum) and the
  group succeeds only if all of them do. A failed group under ``|`` is an ordinary
  failure that moves on to the next alternative (OpenStackoïd crashed there).
- By default a parallel group waits for all its members even after one failed: a write
  runs at every site and the caller reports every site's status. With
  ``fail_fast=True`` (for reads) the first failure cancels the members still running.
- A site named in several branches is called once and its result shared.
- Cancelling ``evaluate`` cancels every call still running. Per-call timeouts are the
  caller's business (wrap ``call``).

The ``Outcome`` lists every attempted site in the order the expression names them,
the attempts of the winning branch, and whether the whole expression succeeded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from edgefed.core.scope import Both, Expr, Site
from edgefed.core.scope_resolve import FleetView, ResolvedExpr, children, resolve_expr

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Attempt(Generic[R]):
    """One call to one site: its result or the exception it raised."""

    site: str
    ok: bool
    result: R | None = None
    error: BaseException | None = None
    cancelled: bool = False

    def describe(self) -> str:
        """A short human account, for error bodies that list every site."""
        if self.cancelled:
            return f"{self.site}: cancelled"
        if self.error is not None:
            detail = str(self.error) or type(self.error).__name__
            return f"{self.site}: {type(self.error).__name__}: {detail}"
        return f"{self.site}: {'ok' if self.ok else 'failed'}"


@dataclass(frozen=True, slots=True)
class Outcome(Generic[R]):
    """What an evaluation did: every attempt, the winners, and the verdict."""

    succeeded: bool
    attempts: tuple[Attempt[R], ...]
    winners: tuple[Attempt[R], ...]

    @property
    def winning_sites(self) -> tuple[str, ...]:
        return tuple(a.site for a in self.winners)

    @property
    def results(self) -> list[R]:
        """The winners' results, in the order the expression names their sites."""
        return [cast(R, a.result) for a in self.winners]

    @property
    def failures(self) -> tuple[Attempt[R], ...]:
        return tuple(a for a in self.attempts if not a.ok)


async def evaluate(
    expr: Expr,
    fleet: FleetView,
    call: Callable[[str], Awaitable[R]],
    *,
    failed: Callable[[R], bool] = lambda _result: False,
    fail_fast: bool = False,
    max_parallel: int | None = None,
) -> Outcome[R]:
    """Resolve ``expr`` against ``fleet`` and run ``call`` on its sites.

    Raises ``ScopeResolutionError`` before any call when the expression names sites
    the fleet does not have. ``max_parallel`` bounds the calls in flight (``*`` on a
    fleet of a thousand sites).
    """
    return await evaluate_resolved(
        resolve_expr(expr, fleet),
        call,
        failed=failed,
        fail_fast=fail_fast,
        max_parallel=max_parallel,
    )


async def evaluate_resolved(
    resolved: ResolvedExpr,
    call: Callable[[str], Awaitable[R]],
    *,
    failed: Callable[[R], bool] = lambda _result: False,
    fail_fast: bool = False,
    max_parallel: int | None = None,
) -> Outcome[R]:
    """``evaluate`` of an expression resolved already (the router resolves one to
    choose between a single hop and a fan-out)."""
    run = _Run(call=call, failed=failed, fail_fast=fail_fast, max_parallel=max_parallel)
    return await run.outcome(resolved)


@dataclass(frozen=True, slots=True)
class _Branch:
    ok: bool
    winners: tuple[int, ...]  # leaf indexes, in expression order


class _Run(Generic[R]):
    def __init__(
        self,
        *,
        call: Callable[[str], Awaitable[R]],
        failed: Callable[[R], bool],
        fail_fast: bool,
        max_parallel: int | None,
    ) -> None:
        self.call = call
        self.failed = failed
        self.fail_fast = fail_fast
        self.max_parallel = max_parallel
        self.limit: asyncio.Semaphore | None = None
        self.attempts: dict[int, Attempt[R]] = {}
        self.calls: dict[str, _SharedCall[R]] = {}
        self.next_leaf = 0

    async def outcome(self, tree: ResolvedExpr) -> Outcome[R]:
        plan = self.number(tree)
        if self.max_parallel and self.next_leaf > self.max_parallel:
            self.limit = asyncio.Semaphore(self.max_parallel)  # else nothing would wait
        branch = await self.run(plan)
        ordered = tuple(self.attempts[i] for i in sorted(self.attempts))
        winners = tuple(self.attempts[i] for i in branch.winners) if branch.ok else ()
        return Outcome(succeeded=branch.ok, attempts=ordered, winners=winners)

    # The plan is the resolved tree with each leaf numbered in expression order, so
    # attempts sort by where the site is written even when the same site repeats.
    def number(self, node: ResolvedExpr) -> _Plan:
        if isinstance(node, Site):
            self.next_leaf += 1
            return _Leaf(self.next_leaf - 1, node.name)
        members = tuple(self.number(c) for c in children(node))
        return _All(members) if isinstance(node, Both) else _First(members)

    async def run(self, plan: _Plan) -> _Branch:
        if isinstance(plan, _Leaf):
            return await self.leaf(plan)
        if isinstance(plan, _First):
            for option in plan.members:
                branch = await self.run(option)
                if branch.ok:
                    return branch
            return _Branch(ok=False, winners=())
        return await self.all(plan)

    async def leaf(self, leaf: _Leaf) -> _Branch:
        # A site named in several branches is called once; every reference shares the
        # call (a write must not run twice, a read must not be merged twice). The call
        # is cancelled only when the last branch waiting for it no longer needs it.
        shared = self.calls.get(leaf.site)
        if shared is None or shared.task.cancelled():
            shared = _SharedCall(asyncio.ensure_future(self.invoke(leaf.site)), leaf.index)
            self.calls[leaf.site] = shared
        shared.waiters += 1
        try:
            attempt = await asyncio.shield(shared.task)
        except asyncio.CancelledError:
            shared.waiters -= 1
            if shared.waiters == 0 and not shared.task.done():
                shared.task.cancel()
                await asyncio.gather(shared.task, return_exceptions=True)
                self.attempts[shared.index] = Attempt(leaf.site, ok=False, cancelled=True)
            raise
        shared.waiters -= 1
        self.attempts[shared.index] = attempt
        return _Branch(ok=attempt.ok, winners=(shared.index,) if attempt.ok else ())

    async def invoke(self, site: str) -> Attempt[R]:
        try:
            if self.limit is None:
                result = await self.call(site)
            else:
                async with self.limit:
                    result = await self.call(site)
        except Exception as exc:
            return Attempt(site, ok=False, error=exc)
        return Attempt(site, ok=not self.failed(result), result=result)

    async def all(self, group: _All) -> _Branch:
        tasks = [asyncio.ensure_future(self.run(m)) for m in group.members]
        try:
            pending = set(tasks)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if self.fail_fast and any(not t.result().ok for t in done):
                    break
        finally:
            # Members still running are no longer needed (fail fast), or the caller
            # cancelled us: cancel them and wait until they have really stopped.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        branches = [t.result() for t in tasks if not t.cancelled()]
        if len(branches) < len(tasks) or not all(b.ok for b in branches):
            return _Branch(ok=False, winners=())
        winners = dict.fromkeys(i for b in branches for i in b.winners)  # shared calls once
        return _Branch(ok=True, winners=tuple(winners))


class _SharedCall(Generic[R]):
    """One site's call, awaited by every branch that names the site."""

    def __init__(self, task: asyncio.Future[Attempt[R]], index: int) -> None:
        self.task = task
        self.index = index  # the first leaf that named the site: where it is reported
        self.waiters = 0


@dataclass(frozen=True, slots=True)
class _Leaf:
    index: int
    site: str


@dataclass(frozen=True, slots=True)
class _All:
    members: tuple[_Plan, ...]


@dataclass(frozen=True, slots=True)
class _First:
    members: tuple[_Plan, ...]


_Plan = _Leaf | _All | _First
