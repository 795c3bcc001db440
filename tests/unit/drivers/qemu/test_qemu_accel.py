"""The KVM probe: its firmware, its decision, its speed, its cache; the host's facts."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from qemu_support import needs_qemu

from edgefed.drivers.qemu import accel

FIRMWARE_DIR = accel.FIRMWARE.parent


@pytest.mark.skipif(
    shutil.which("as") is None or shutil.which("ld") is None, reason="binutils not installed"
)
def test_shipped_probe_firmware_is_the_build_of_its_source(tmp_path: Path) -> None:
    subprocess.run(
        ["as", "--64", "-o", str(tmp_path / "probe.o"), str(FIRMWARE_DIR / "probe.S")],
        check=True,
    )
    subprocess.run(
        ["ld", "-m", "elf_x86_64", "-Ttext=0xf0000", "-e", "start16", "--oformat", "binary",
         "-o", str(tmp_path / "probe.bin"), str(tmp_path / "probe.o")],
        check=True,
    )  # fmt: skip
    assert (tmp_path / "probe.bin").read_bytes() == accel.FIRMWARE.read_bytes()
    assert accel.FIRMWARE.stat().st_size == 64 * 1024


@needs_qemu
async def test_the_firmware_runs_every_stage_under_tcg() -> None:
    # what makes a KVM failure KVM's: the same firmware completes under TCG
    result = await accel.run_probe(qemu="qemu-system-x86_64", accel="tcg", cpu="max", deadline=5.0)
    assert result.usable, result.reason
    assert list(result.stages_ms) == ["R", "L", "M", "C"]
    assert result.exit_status == accel.DEBUG_EXIT_STATUS


def fake_qemu(tmp_path: Path, body: str) -> str:
    script = tmp_path / "fake-qemu"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


async def test_a_kvm_that_completes_is_usable(tmp_path: Path) -> None:
    device = tmp_path / "kvm"
    device.touch()
    qemu = fake_qemu(tmp_path, "printf RLMC; exit 3")
    result = await accel.run_probe(qemu=qemu, accel="kvm", cpu="host", deadline=2, device=device)
    assert result.usable


async def test_a_kvm_that_crawls_is_decided_against_within_the_deadline(tmp_path: Path) -> None:
    device = tmp_path / "kvm"
    device.touch()
    qemu = fake_qemu(tmp_path, "printf RL; exec sleep 30")
    started = time.monotonic()
    result = await accel.run_probe(qemu=qemu, accel="kvm", cpu="host", deadline=0.3, device=device)
    assert time.monotonic() - started < 1.0
    assert not result.usable
    assert "too slow: stages RL of RLMC" in result.reason


async def test_a_kvm_that_aborts_is_refused_with_qemus_words(tmp_path: Path) -> None:
    device = tmp_path / "kvm"
    device.touch()
    qemu = fake_qemu(tmp_path, "echo 'kvm_buf_set_msrs: Assertion failed.' >&2; kill -ABRT $$")
    result = await accel.run_probe(qemu=qemu, accel="kvm", cpu="host", deadline=2, device=device)
    assert not result.usable
    assert "Assertion failed" in result.reason


async def test_no_kvm_device_means_no_probe(tmp_path: Path) -> None:
    result = await accel.run_probe(
        qemu="/nonexistent", accel="kvm", cpu="host", deadline=2, device=tmp_path / "kvm"
    )
    assert not result.usable
    assert result.reason == f"no {tmp_path / 'kvm'}"


@needs_qemu
async def test_host_facts_decide_fast_and_are_cached_per_boot(tmp_path: Path) -> None:
    first = await accel.host_facts(state_dir=tmp_path, qemu="qemu-system-x86_64")
    assert first.decided_in_ms < 1000
    assert not first.cached
    # KVM is chosen exactly when the probe completed; on this project's machines it
    # aborts or crawls, so guests run under TCG
    assert first.accel == ("kvm" if first.probe.usable else "tcg")
    if not first.probe.usable:
        assert first.probe.reason
    assert first.hypervisor_type == "QEMU"
    assert first.hypervisor_version == accel.nova_version(first.qemu_version)
    assert first.cpu_model and first.cpu_cores >= 1

    again = await accel.host_facts(state_dir=tmp_path, qemu="qemu-system-x86_64")
    assert again.cached
    assert again.decided_in_ms < 50
    assert (again.accel, again.probe) == (first.accel, first.probe)


@needs_qemu
async def test_settings_can_force_the_accelerator(tmp_path: Path) -> None:
    facts = await accel.host_facts(state_dir=tmp_path, qemu="qemu-system-x86_64", forced="tcg")
    assert facts.accel == "tcg"
    assert not (tmp_path / accel.CACHE_FILE).exists()


def test_nova_encodes_versions_as_integers() -> None:
    assert accel.nova_version("7.2.22") == 7_002_022
    assert accel.nova_version("8.1") == 8_001_000


def test_cpu_facts_come_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n\n"
        "processor\t: 1\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n"
    )
    assert accel.cpu_info(cpuinfo) == ("AMD EPYC", "AuthenticAMD", 2)
