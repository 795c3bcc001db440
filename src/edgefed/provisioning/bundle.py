"""An Ansible bundle for provisioning one host: inventory, one playbook, its roles.

The playbook follows the EdgeWorker spec's sequence: a first play prepares the
controller (containerd config and registry certificate, a Kubernetes bootstrap token
and the CA certificate hash), a second provisions the edgeworkers (network and DNS,
proxy, essential packages, NTP, containerd, kubelet and kubeadm at exactly the
controller's Kubernetes version, sysctl and swap, ``kubeadm join``, image pre-pull).
Every role is tagged with its name, so a subset can be run (``--tags ntp,swap``).

The roles are static files shipped in ``ansible_files/``; only the inventory and the
playbook are generated. The bundle is self-contained (``ansible.cfg`` points at its
roles and at the ``edgefed_chroot`` connection plugin).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgefed.core.errors import ValidationFailed

FILES = Path(__file__).parent / "ansible_files"
PLAYBOOK = "edgeworker.yml"
INVENTORY = "inventory.yml"
SUPPORTED_OS = ("ubuntu", "centos", "debian")
CONTROLLER_ROLES = ("controller_containerd", "controller_kubernetes")
EDGEWORKER_ROLES = (
    "edgeworker_network",
    "edgeworker_proxy",
    "edgeworker_packages",
    "edgeworker_ntp",
    "edgeworker_containerd",
    "edgeworker_kubernetes",
    "edgeworker_sysctl",
    "edgeworker_swap",
    "edgeworker_join",
    "edgeworker_images",
)
# The roles that need no package repository, cluster or controller.
OS_INDEPENDENT_TAGS = ("network", "ntp", "sysctl", "swap", "containerd")


def tag(role: str) -> str:
    return role.split("_", 1)[1]


@dataclass(frozen=True, slots=True)
class Target:
    """One machine of the inventory: its name and how Ansible reaches it."""

    hostname: str
    address: str
    variables: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProvisionPlan:
    edgeworkers: Sequence[Target]
    controllers: Sequence[Target] = ()
    kubernetes_version: str | None = None
    controller_address: str = ""
    ntp_servers: Sequence[str] = ()
    dns_servers: Sequence[str] = ()
    http_proxy: str = ""
    mgmt_prefix: int = 24
    connection: str = "ssh"
    ssh_user: str | None = None
    become: bool = False
    live: bool = True
    site: str = ""

    def check(self) -> None:
        if not self.edgeworkers:
            raise ValidationFailed("nothing to provision: no edgeworker host given", field="host")
        if not self.controllers and not self.kubernetes_version:
            raise ValidationFailed(
                "the site has no controller host in its inventory: give the Kubernetes "
                "version of the cluster (--kubernetes-version)",
                field="kubernetes_version",
            )
        for target in self.edgeworkers:
            os_id = str(target.variables.get("edgefed_os", ""))
            if os_id and os_id not in SUPPORTED_OS:
                raise ValidationFailed(
                    f"{target.hostname} runs {os_id!r}; edgeworkers run {', '.join(SUPPORTED_OS)}",
                    field="os",
                )


def inventory(plan: ProvisionPlan) -> dict[str, Any]:
    common: dict[str, Any] = {
        "ansible_connection": plan.connection,
        "ansible_python_interpreter": "/usr/bin/python3",
        "edgefed_live": plan.live,
        "edgefed_site": plan.site,
        "edgefed_mgmt_prefix": plan.mgmt_prefix,
    }
    if plan.ssh_user:
        common["ansible_user"] = plan.ssh_user
    if plan.become:
        common["ansible_become"] = True
    if plan.kubernetes_version:
        common["edgefed_kubernetes_version"] = plan.kubernetes_version.removeprefix("v")
    if plan.controller_address:
        common["edgefed_controller_address"] = plan.controller_address
    if plan.ntp_servers:
        common["edgefed_ntp_servers"] = list(plan.ntp_servers)
    if plan.dns_servers:
        common["edgefed_dns_servers"] = list(plan.dns_servers)
    if plan.http_proxy:
        common["edgefed_http_proxy"] = plan.http_proxy

    def hosts(targets: Sequence[Target]) -> dict[str, Any]:
        return {t.hostname: {"ansible_host": t.address, **t.variables} for t in targets}

    return {
        "all": {
            "vars": common,
            "children": {
                "controllers": {"hosts": hosts(plan.controllers)},
                "edgeworkers": {"hosts": hosts(plan.edgeworkers)},
            },
        }
    }


def playbook() -> list[dict[str, Any]]:
    return [
        {
            "name": "Prepare the controller for edgeworkers",
            "hosts": "controllers",
            "gather_facts": False,
            "roles": [{"role": r, "tags": ["controller", tag(r)]} for r in CONTROLLER_ROLES],
        },
        {
            "name": "Provision the edgeworkers and join them to Kubernetes",
            "hosts": "edgeworkers",
            "gather_facts": True,
            "roles": [{"role": r, "tags": [tag(r)]} for r in EDGEWORKER_ROLES],
        },
    ]


ANSIBLE_CFG = """\
[defaults]
roles_path = ./roles
connection_plugins = ./connection_plugins
inventory = ./inventory.yml
host_key_checking = True
retry_files_enabled = False
interpreter_python = auto_silent
"""


class _IndentedDumper(yaml.SafeDumper):
    """Indents lists inside mappings, as yamllint (and so ansible-lint) expects."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _yaml(data: Any) -> str:
    text = yaml.dump(
        data, Dumper=_IndentedDumper, sort_keys=False, default_flow_style=False, width=100
    )
    return "---\n" + text


def write_bundle(directory: Path, plan: ProvisionPlan) -> Path:
    """Write the bundle into ``directory`` (created, roles replaced); returns the playbook."""
    plan.check()
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("roles", "connection_plugins"):
        shutil.rmtree(directory / name, ignore_errors=True)
        shutil.copytree(
            FILES / name, directory / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    (directory / "ansible.cfg").write_text(ANSIBLE_CFG)
    (directory / INVENTORY).write_text(_yaml(inventory(plan)))
    (directory / PLAYBOOK).write_text(_yaml(playbook()))
    return directory / PLAYBOOK
