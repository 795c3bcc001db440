"""``openstack server relocate``: ``--volumes move`` asks for the volumes to go with the
server, and ``--wait`` prints each moved volume's phase with the move's. The compute
proxy is a recorder answering as a site would."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import pytest

from edgefed.cli import osc_commands
from edgefed.cli.osc_commands import RelocateServer


class Answer:
    def __init__(self, status: int, body: dict[str, Any]):
        self.status_code, self.body, self.text = status, body, str(body)

    def json(self) -> dict[str, Any]:
        return self.body


class Compute:
    """The site: a move accepted, then its journal as it goes."""

    def __init__(self, journal: list[dict[str, Any]]):
        self.posted: list[dict[str, Any]] = []
        self.journal = journal

    def find_server(self, name: str, ignore_missing: bool) -> Any:
        return SimpleNamespace(id="s1")

    def post(self, path: str, json: dict[str, Any]) -> Answer:
        self.posted.append(json)
        return Answer(202, {"relocation": {"id": "r1", "phase": "stopping"}})

    def get(self, path: str) -> Answer:
        return Answer(200, {"relocations": [self.journal.pop(0)]})


def relocate(compute: Compute, *argv: str) -> tuple[tuple[Any, ...], str]:
    err = io.StringIO()
    app = SimpleNamespace(
        client_manager=SimpleNamespace(sdk_connection=SimpleNamespace(compute=compute)),
        stderr=err,
    )
    cmd = RelocateServer(app, None)
    _, row = cmd.take_action(cmd.get_parser("relocate").parse_args(list(argv)))
    return row, err.getvalue()


def step(phase: str, volume: str) -> dict[str, Any]:
    return {"id": "r1", "site": "Paris", "phase": phase, "bytes_done": 0, "bytes_total": 0,
            "volumes": [{"id": "v1", "phase": volume}]}  # fmt: skip


def test_volumes_move_and_their_phases_are_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(osc_commands, "POLL_SECONDS", 0.0)
    compute = Compute([step("sending", "sending"), step("done", "moved")])
    row, err = relocate(compute, "vm1", "--site", "Paris", "--volumes", "move", "--wait")
    assert compute.posted == [
        {"os-edge:relocate": {"site": "Paris", "mode": "cold", "volumes": "move"}}
    ]
    assert err.splitlines() == ["sending; volume v1 sending", "done; volume v1 moved"]
    assert "done" in row


def test_volumes_stay_unless_asked() -> None:
    compute = Compute([])
    relocate(compute, "vm1", "--site", "Paris")
    assert compute.posted[0]["os-edge:relocate"]["volumes"] == "remote"
