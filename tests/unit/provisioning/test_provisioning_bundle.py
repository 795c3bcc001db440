"""The Ansible bundle for one host: what the plan refuses, the inventory and playbook it
writes (as Ansible and yamllint read them), and running it with ansible-playbook, here
a stand-in script that answers as ansible-playbook does."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
import yaml

from edgefed.core.errors import BadRequest, ValidationFailed
from edgefed.provisioning.bundle import (
    EDGEWORKER_ROLES,
    FILES,
    INVENTORY,
    PLAYBOOK,
    ProvisionPlan,
    Target,
    inventory,
    playbook,
    write_bundle,
)
from edgefed.provisioning.runner import ansible_tool, run_playbook

WORKER = Target("edge-1", "10.0.0.5", {"edgefed_mgmt_ip": "192.168.204.10"})
CONTROLLER = Target("ctl-1", "10.0.0.2")


def plan(**over: object) -> ProvisionPlan:
    values: dict[str, object] = {"edgeworkers": [WORKER], "controllers": [CONTROLLER]}
    values.update(over)
    return ProvisionPlan(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("over", "field", "message"),
    [
        ({"edgeworkers": []}, "host", "no edgeworker host given"),
        ({"controllers": []}, "kubernetes_version", "--kubernetes-version"),
        (
            {"edgeworkers": [Target("w", "10.0.0.9", {"edgefed_os": "windows"})]},
            "os",
            "w runs 'windows'; edgeworkers run ubuntu, centos, debian",
        ),
    ],
)
def test_a_plan_that_cannot_work_is_refused_naming_why(
    over: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message) as info:
        plan(**over).check()
    assert info.value.field == field


def test_a_version_stands_in_for_a_missing_controller() -> None:
    plan(controllers=[], kubernetes_version="v1.30.2").check()
    plan(edgeworkers=[Target("w", "x", {"edgefed_os": "debian"})]).check()


def test_the_inventory_groups_hosts_and_sets_only_the_variables_given() -> None:
    bare = inventory(plan())
    assert bare["all"]["vars"] == {
        "ansible_connection": "ssh",
        "ansible_python_interpreter": "/usr/bin/python3",
        "edgefed_live": True,
        "edgefed_site": "",
        "edgefed_mgmt_prefix": 24,
    }
    groups = bare["all"]["children"]
    assert groups["controllers"]["hosts"] == {"ctl-1": {"ansible_host": "10.0.0.2"}}
    assert groups["edgeworkers"]["hosts"] == {
        "edge-1": {"ansible_host": "10.0.0.5", "edgefed_mgmt_ip": "192.168.204.10"}
    }
    full = inventory(
        plan(
            kubernetes_version="v1.30.2",
            controller_address="10.0.0.2",
            ntp_servers=("ntp1", "ntp2"),
            dns_servers=("9.9.9.9",),
            http_proxy="http://proxy:3128",
            ssh_user="ops",
            become=True,
            connection="edgefed_chroot",
            site="http://berlin.test",
        )
    )["all"]["vars"]
    assert full["edgefed_kubernetes_version"] == "1.30.2"  # without its v
    assert full["edgefed_ntp_servers"] == ["ntp1", "ntp2"]
    assert full["edgefed_dns_servers"] == ["9.9.9.9"]
    assert full["edgefed_http_proxy"] == "http://proxy:3128"
    assert (full["ansible_user"], full["ansible_become"]) == ("ops", True)
    assert full["ansible_connection"] == "edgefed_chroot"
    assert full["edgefed_controller_address"] == "10.0.0.2"


def test_the_playbook_prepares_the_controller_then_every_role_tagged() -> None:
    controller, workers = playbook()
    assert (controller["hosts"], workers["hosts"]) == ("controllers", "edgeworkers")
    assert [r["role"] for r in workers["roles"]] == list(EDGEWORKER_ROLES)
    assert [r["tags"] for r in workers["roles"][:3]] == [["network"], ["proxy"], ["packages"]]
    assert all("controller" in r["tags"] for r in controller["roles"])
    for play in (controller, workers):
        for role in play["roles"]:
            assert (FILES / "roles" / role["role"]).is_dir(), role["role"]


def test_the_bundle_is_self_contained_and_reads_back_as_written(tmp_path: Path) -> None:
    the_plan = plan(ntp_servers=("ntp1",))
    written = write_bundle(tmp_path / "b", the_plan)
    assert written == tmp_path / "b" / PLAYBOOK
    assert yaml.safe_load((tmp_path / "b" / INVENTORY).read_text()) == inventory(the_plan)
    assert yaml.safe_load(written.read_text()) == playbook()
    config = (tmp_path / "b" / "ansible.cfg").read_text()
    assert "roles_path = ./roles" in config and "host_key_checking = True" in config
    for role in EDGEWORKER_ROLES:
        assert (tmp_path / "b" / "roles" / role).is_dir()
    assert (tmp_path / "b" / "connection_plugins" / "edgefed_chroot.py").is_file()
    assert not list((tmp_path / "b").rglob("__pycache__"))


def test_the_yaml_starts_a_document_and_indents_lists_as_yamllint_wants(tmp_path: Path) -> None:
    write_bundle(tmp_path, plan(ntp_servers=("ntp1",)))
    text = (tmp_path / INVENTORY).read_text()
    assert text.startswith("---\n")
    assert "      edgefed_ntp_servers:\n      - ntp1\n" not in text
    assert "    edgefed_ntp_servers:\n      - ntp1\n" in text


def test_writing_again_replaces_the_roles(tmp_path: Path) -> None:
    write_bundle(tmp_path, plan())
    stale = tmp_path / "roles" / "edgeworker_ntp" / "stale.yml"
    stale.write_text("- leftover\n")
    write_bundle(tmp_path, plan())
    assert not stale.exists()


def test_a_refused_plan_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed):
        write_bundle(tmp_path / "b", plan(edgeworkers=[]))
    assert not (tmp_path / "b").exists()


# ---- running --------------------------------------------------------------------------------

RECAP = """\
PLAY RECAP *********************************************************************
ctl-1                      : ok=4    changed=0    unreachable=0    failed=0    skipped=1
edge-1                     : ok=21   changed=7    unreachable=0    failed=1    skipped=3
"""


@pytest.fixture
def fake_ansible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``ansible-playbook`` beside this Python that records how it was run."""
    bindir = tmp_path / "venv" / "bin"
    bindir.mkdir(parents=True)
    script = bindir / "ansible-playbook"
    script.write_text(
        "#!/bin/sh\n"
        'echo "args: $*"\n'
        'echo "config: $ANSIBLE_CONFIG color: $ANSIBLE_NOCOLOR/$ANSIBLE_FORCE_COLOR"\n'
        'echo "cwd: $(pwd)"\n'
        f"cat <<'EOF'\n{RECAP}EOF\n"
        "echo oops >&2\n"
        "exit 2\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(sys, "executable", str(bindir / "python"))
    return script


def test_the_tool_beside_this_python_is_the_one_run(fake_ansible: Path) -> None:
    assert ansible_tool("ansible-playbook") == str(fake_ansible)


def test_a_missing_tool_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BadRequest, match="pip install ansible-core"):
        ansible_tool("ansible-playbook")


def test_a_run_reads_the_recap_per_host(tmp_path: Path, fake_ansible: Path) -> None:
    write_bundle(tmp_path / "b", plan())
    result = run_playbook(tmp_path / "b", tags=("ntp", "swap"), extra_args=("-v",))
    assert result.returncode == 2
    assert result.recap == {"ctl-1": (4, 0, 0, 0), "edge-1": (21, 7, 0, 1)}
    assert result.changed == 7
    assert f"args: -i {INVENTORY} {PLAYBOOK} --tags ntp,swap -v" in result.output
    assert f"config: {tmp_path / 'b' / 'ansible.cfg'} color: 1/0" in result.output
    assert f"cwd: {os.path.realpath(tmp_path / 'b')}" in result.output
    assert "oops" in result.output  # stderr is kept too
    syntax = run_playbook(tmp_path / "b", syntax_check=True)
    assert f"{PLAYBOOK} --syntax-check" in syntax.output
