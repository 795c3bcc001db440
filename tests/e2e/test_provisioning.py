"""The generated edgeworker playbook: syntax-checked, linted, and its OS-independent
roles run for real with ansible-core against a Debian root file system (chroot), twice,
the second run changing nothing.

The root file system is made once with debootstrap and cached as a tarball under
.cache/ (keyed by suite and package list); later runs only unpack it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from edgefed.provisioning.bundle import OS_INDEPENDENT_TAGS, ProvisionPlan, Target, write_bundle
from edgefed.provisioning.runner import ansible_tool, run_playbook

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# minbase, plus what the OS-independent roles use: Python for Ansible, apt bindings for
# its package module, and the packages those roles install (present, so they stay put).
PACKAGES = "python3,python3-apt,chrony,containerd,ca-certificates"
CACHE = REPO / ".cache" / f"debootstrap-{SUITE}-edgeworker-v1.tar"


def _cached_rootfs_tarball() -> Path:
    stamp = CACHE.with_suffix(".packages")
    if CACHE.exists() and (not stamp.exists() or stamp.read_text() == PACKAGES):
        return CACHE
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        pytest.skip("needs root and debootstrap (make system-deps) to build the Debian rootfs")
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    build = CACHE.parent / f"debootstrap-{SUITE}.build"
    shutil.rmtree(build, ignore_errors=True)
    subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE, str(build), MIRROR],
        check=True,
        capture_output=True,
        timeout=900,
    )
    tmp = CACHE.with_suffix(".tmp")
    subprocess.run(["tar", "-C", str(build), "-cf", str(tmp), "."], check=True, timeout=300)
    tmp.replace(CACHE)
    stamp.write_text(PACKAGES)
    shutil.rmtree(build, ignore_errors=True)
    return CACHE


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("the chroot connection needs root")
    tarball = _cached_rootfs_tarball()
    root = tmp_path_factory.mktemp("edgeworker") / "rootfs"
    root.mkdir()
    subprocess.run(["tar", "-C", str(root), "-xf", str(tarball)], check=True, timeout=300)
    # A swap entry, as many installed systems have: the swap role must disable it.
    with (root / "etc/fstab").open("a") as fh:
        fh.write("/swapfile none swap sw 0 0\n")
    return root


def plan_for(address: str, *, connection: str, live: bool) -> ProvisionPlan:
    return ProvisionPlan(
        edgeworkers=[
            Target(
                "edge-1",
                address,
                {"edgefed_mgmt_ip": "192.168.204.10", "edgefed_mgmt_interface": "eth1"},
            )
        ],
        kubernetes_version="1.29.2",
        controller_address="192.168.204.2",
        ntp_servers=("192.168.204.2", "ntp.example.org"),
        dns_servers=("192.168.204.2",),
        connection=connection,
        live=live,
        site="Berlin",
    )


def test_playbook_passes_syntax_check_and_ansible_lint(tmp_path: Path):
    bundle = tmp_path / "bundle"
    plan = ProvisionPlan(
        edgeworkers=[Target("edge-1", "192.168.204.10", {"edgefed_mgmt_ip": "192.168.204.10"})],
        controllers=[Target("controller-0", "192.168.204.2")],
        controller_address="192.168.204.2",
    )
    write_bundle(bundle, plan)
    result = run_playbook(bundle, syntax_check=True)
    assert result.returncode == 0, result.output
    lint = subprocess.run(
        [ansible_tool("ansible-lint"), "--offline", "--nocolor", "--profile", "production"],
        cwd=bundle,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, ANSIBLE_CONFIG=str(bundle / "ansible.cfg")),
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_os_independent_roles_run_in_a_debian_chroot_and_are_idempotent(
    tmp_path: Path, rootfs: Path
):
    bundle = tmp_path / "bundle"
    write_bundle(bundle, plan_for(str(rootfs), connection="edgefed_chroot", live=False))

    first = run_playbook(bundle, tags=OS_INDEPENDENT_TAGS, timeout=600)
    assert first.returncode == 0, first.output[-6000:]
    assert first.recap["edge-1"][3] == 0 and first.changed > 0

    assert (
        "address 192.168.204.10/24"
        in (rootfs / "etc/network/interfaces.d/edgefed-mgmt").read_text()
    )
    assert "nameserver 192.168.204.2" in (rootfs / "etc/resolv.conf").read_text()
    assert "192.168.204.2 controller" in (rootfs / "etc/hosts").read_text()
    chrony = (rootfs / "etc/chrony/chrony.conf").read_text()
    assert "server 192.168.204.2 iburst" in chrony and "server ntp.example.org iburst" in chrony
    sysctl = (rootfs / "etc/sysctl.d/80-edgefed-kubernetes.conf").read_text()
    assert "net.bridge.bridge-nf-call-iptables = 1" in sysctl
    assert "net.ipv4.ip_forward = 1" in sysctl
    assert "br_netfilter" in (rootfs / "etc/modules-load.d/edgefed-kubernetes.conf").read_text()
    assert "# /swapfile none swap sw 0 0" in (rootfs / "etc/fstab").read_text()
    containerd = (rootfs / "etc/containerd/config.toml").read_text()
    assert "SystemdCgroup = true" in containerd
    assert "containerd.sock" in (rootfs / "etc/crictl.yaml").read_text()
    assert (rootfs / "usr/bin/containerd").exists() and (rootfs / "usr/sbin/chronyd").exists()
    before = hashlib.sha256((rootfs / "etc/fstab").read_bytes()).hexdigest()

    second = run_playbook(bundle, tags=OS_INDEPENDENT_TAGS, timeout=600)
    assert second.returncode == 0, second.output[-6000:]
    assert second.changed == 0, second.output[-6000:]
    assert hashlib.sha256((rootfs / "etc/fstab").read_bytes()).hexdigest() == before
