"""Composing one answer from several sites' (``fanout.compose``): which answers count,
the status a client sees, the sites named in ``X-Edgefed-Site``, and the headers of the
first success. Outcomes are built by hand, as the evaluator would return them."""

from __future__ import annotations

import json
from typing import Any

from edgefed.core.scope_eval import Attempt, Outcome
from edgefed.router.fanout import attempted, compose, failed
from edgefed.router.merge import RESULTS_KEY, SiteAnswer

IMAGES = "/image/v2/images"


def answer(site: str, status: int, body: Any = None, **kw: Any) -> SiteAnswer:
    data = b"" if body is None else json.dumps(body).encode()
    return SiteAnswer(site=site, status=status, body=data, **kw)


def outcome(*answers: SiteAnswer, winners: tuple[str, ...] | None = None) -> Outcome[SiteAnswer]:
    attempts = tuple(Attempt(site=a.site, ok=not failed(a), result=a) for a in answers)
    if winners is None:
        winners = tuple(a.site for a in answers) if all(x.ok for x in attempts) else ()
    won = tuple(a for a in attempts if a.site in winners)
    return Outcome(succeeded=bool(won), attempts=attempts, winners=won)


def headers_of(composed: tuple[int, bytes, list[tuple[bytes, bytes]]]) -> dict[bytes, bytes]:
    return dict(composed[2])


def test_failed_means_no_answer_a_5xx_or_a_404() -> None:
    assert failed(answer("A", 503))
    assert failed(answer("A", 404))
    assert failed(SiteAnswer(site="A", status=503, error="no answer"))
    assert not failed(answer("A", 200))
    assert not failed(answer("A", 409))  # an answer, not a reason to try elsewhere
    assert not failed(answer("A", 403))


def test_reads_from_every_site_are_merged_and_every_site_named() -> None:
    composed = compose(
        "GET",
        IMAGES,
        outcome(answer("Berlin", 200, {"images": [{"id": "b"}]}),
                answer("Denver", 200, {"images": [{"id": "d"}]})),
    )  # fmt: skip
    status, body, _ = composed
    assert status == 200
    assert [i["id"] for i in json.loads(body)["images"]] == ["b", "d"]
    headers = headers_of(composed)
    assert headers[b"x-edgefed-site"] == b"Berlin,Denver"
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"content-length"] == str(len(body)).encode()


def test_the_first_successes_headers_pass_on_but_not_its_content_type() -> None:
    first = answer(
        "Berlin",
        200,
        {"images": []},
        headers=[(b"content-type", b"text/plain"), (b"x-openstack-request-id", b"req-b")],
    )
    composed = compose("GET", IMAGES, outcome(first, answer("Denver", 200, {"images": []})))
    headers = composed[2]
    assert (b"x-openstack-request-id", b"req-b") in headers
    assert [v for k, v in headers if k == b"content-type"] == [b"application/json"]


def test_a_read_missing_at_some_sites_answers_with_the_others() -> None:
    status, body, _ = compose(
        "GET",
        f"{IMAGES}/x",
        outcome(answer("Berlin", 404, {"message": "no"}),
                answer("Denver", 200, {"image": {"id": "x"}})),
    )  # fmt: skip
    assert status == 200
    assert json.loads(body)["image"]["id"] == "x"


def test_a_read_that_failed_otherwise_lists_every_site() -> None:
    status, body, _ = compose(
        "GET",
        IMAGES,
        outcome(answer("Berlin", 200, {"images": []}),
                SiteAnswer(site="Denver", status=503, error="no answer: cut")),
    )  # fmt: skip
    assert status == 503
    doc = json.loads(body)
    assert "Denver: no answer: cut" in json.dumps(doc)
    assert [r["site"] for r in doc[RESULTS_KEY]] == ["Berlin", "Denver"]


def test_a_write_must_succeed_everywhere() -> None:
    everywhere = outcome(answer("Berlin", 201, {"image": {"id": "n"}}),
                         answer("Denver", 201, {"image": {"id": "n"}}))  # fmt: skip
    assert compose("POST", IMAGES, everywhere)[0] == 201

    partial = outcome(
        answer("Berlin", 201, {"image": {"id": "n"}}), answer("Denver", 409, {"message": "taken"}),
        winners=("Berlin", "Denver"),
    )  # fmt: skip
    status, body, _ = compose("POST", IMAGES, partial)
    assert status == 409
    assert "no silent partial success" in body.decode()


def test_a_head_answer_has_no_body_but_its_length_is_the_gets() -> None:
    get = compose("GET", IMAGES, outcome(answer("Berlin", 200, {"images": []})))
    head = compose("HEAD", IMAGES, outcome(answer("Berlin", 200, {"images": []})))
    assert head[0] == get[0] == 200
    assert headers_of(head)[b"content-length"] == headers_of(get)[b"content-length"]


def test_a_call_that_raised_is_a_502_and_a_cancelled_one_is_left_out() -> None:
    attempts = (
        Attempt(site="Berlin", ok=True, result=answer("Berlin", 200, {"images": []})),
        Attempt(site="Denver", ok=False, error=RuntimeError("bug in the leg")),
        Attempt(site="Paris", ok=False, cancelled=True),
    )
    listed = attempted(Outcome(succeeded=False, attempts=attempts, winners=()))
    assert [(a.site, a.status, a.error) for a in listed] == [
        ("Berlin", 200, None),
        ("Denver", 502, "bug in the leg"),
    ]
