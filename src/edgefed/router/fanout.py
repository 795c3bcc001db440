"""Several sites at once: buffer the request, run the scope's expression, compose one answer.

``A&B`` sends the request to every site concurrently (this site too, through the app
itself); ``A|B`` with groups tries them left to right. The answers are composed by
shape (merge.py): a read's collections are merged, a read where some sites answer 404
returns the others' answers (the resource lives at some sites only), and a **write**
must succeed everywhere: otherwise the answer is an error listing every site's status,
so no partial success goes unnoticed.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from edgefed.api.context import SiteContext
from edgefed.api.faults import fault_response
from edgefed.core.scope_eval import Outcome, evaluate_resolved
from edgefed.core.scope_resolve import ResolvedExpr
from edgefed.router.forward import remote_answer
from edgefed.router.merge import SiteAnswer, failure, merge_success
from edgefed.router.wire import (
    FORWARDED_HEADER,
    HOP_BY_HOP,
    READ_METHODS,
    SITE_HEADER,
    forward_headers,
    read_body,
)

MAX_PARALLEL = 64

Composed = tuple[int, bytes, list[tuple[bytes, bytes]]]  # status, body, headers


def failed(answer: SiteAnswer) -> bool:
    """Whether a site's answer makes ``|`` move on: no answer, a 5xx or a 404."""
    return not answer.ok and (
        answer.error is not None or answer.status >= 500 or answer.status == 404
    )


async def fan_out(
    app: ASGIApp,
    ctx: SiteContext,
    resolved: ResolvedExpr,
    scope: AsgiScope,
    receive: Receive,
    send: Send,
    *,
    max_buffer: int,
) -> None:
    """Run the request at the sites ``resolved`` names and send the composed answer."""
    body = await read_body(receive, max_buffer)
    if body is None:
        await fault_response(
            scope["path"], 413, f"a multi-site request body is limited to {max_buffer} bytes"
        )(scope, receive, send)
        return
    headers = forward_headers(scope, ctx.name)  # the same for every site

    async def call(site: str) -> SiteAnswer:
        if site == ctx.name:
            return await local_answer(app, scope, body, ctx.name)
        return await remote_answer(ctx, site, scope, body, headers)

    outcome = await evaluate_resolved(resolved, call, failed=failed, max_parallel=MAX_PARALLEL)
    status, payload, answer_headers = compose(scope["method"], scope["path"], outcome)
    await send({"type": "http.response.start", "status": status, "headers": answer_headers})
    await send(
        {"type": "http.response.body", "body": payload if scope["method"] != "HEAD" else b""}
    )


def compose(method: str, path: str, outcome: Outcome[SiteAnswer]) -> Composed:
    """One answer from every site's: merged successes, or a fault listing each status.

    A write succeeds only if every site it ran at succeeded; a read under ``&`` where
    the failures are all plain 404s returns the sites that have the resource.
    """
    answers = attempted(outcome)
    write = method not in READ_METHODS
    if outcome.succeeded:
        winners = list(outcome.results)
        if write and any(not a.ok for a in winners):
            status, payload = failure(path, answers, write=True)
        else:
            status, payload = merge_success([a for a in winners if a.ok] or winners)
    else:
        successes = [a for a in answers if a.ok]
        only_missing = all(a.status == 404 and a.error is None for a in answers if not a.ok)
        if not write and successes and only_missing:
            status, payload = merge_success(successes)
        else:
            status, payload = failure(path, answers, write=write)
    first = next((a for a in answers if a.ok), None)
    headers = [(b"content-type", b"application/json")]
    if first is not None:
        headers = [(k, v) for k, v in first.headers if k.lower() != b"content-type"] + headers
    headers.append((SITE_HEADER, ",".join(a.site for a in answers).encode()))
    headers.append((b"content-length", str(len(payload)).encode()))
    return status, payload, headers


def attempted(outcome: Outcome[SiteAnswer]) -> Sequence[SiteAnswer]:
    """Every site's answer, in the order the expression names them; a call that raised
    is a 502 answer carrying its error; calls cancelled (not needed) are left out."""
    return [
        a.result
        if a.result is not None
        else SiteAnswer(site=a.site, status=502, error=str(a.error))
        for a in outcome.attempts
        if not a.cancelled
    ]


async def local_answer(app: ASGIApp, scope: AsgiScope, body: bytes, site: str) -> SiteAnswer:
    """This site's own answer, from the app behind the router (marked as forwarded, so
    the router lets it through)."""
    sub = dict(scope)
    sub["headers"] = [*scope["headers"], (FORWARDED_HEADER, site.encode())]
    answer = SiteAnswer(site=site, status=500)
    chunks: list[bytes] = []
    sent = False

    async def sub_receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def sub_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = [
                (bytes(k), bytes(v))
                for k, v in message.get("headers", [])
                if bytes(k).lower() not in HOP_BY_HOP
            ]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(sub, sub_receive, sub_send)
    answer.body = b"".join(chunks)
    return answer
