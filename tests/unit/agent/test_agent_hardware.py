"""What the agent reports of a machine, read from a prepared /proc, /sys and /etc tree."""

from __future__ import annotations

from pathlib import Path

from edgefed.agent import hardware


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def test_cpus_and_memory_come_from_proc(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "proc/cpuinfo": "processor\t: 0\nmodel name : x\n\nprocessor\t: 1\n\nprocessor : 2\n",
            "proc/meminfo": "MemFree:  100 kB\nMemTotal:       16384000 kB\n",
        },
    )
    assert hardware.cpu_count(root) == 3
    assert hardware.memory_mb(root) == 16000


def test_without_proc_the_counts_fall_back(tmp_path: Path) -> None:
    assert hardware.cpu_count(tmp_path) >= 1  # this machine's
    assert hardware.memory_mb(tmp_path) == 0
    tree(tmp_path, {"proc/cpuinfo": "flags: fpu\n"})
    assert hardware.cpu_count(tmp_path) >= 1


def test_disks_are_real_block_devices_with_a_size(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "sys/block/sda/size": "209715200\n",  # 100 GiB in 512-byte sectors
            "sys/block/nvme0n1/size": "2097152",  # 1 GiB
            "sys/block/loop0/size": "1000",
            "sys/block/dm-0/size": "1000",
            "sys/block/sr0/size": "1000",
            "sys/block/sdb/size": "0",  # an empty card reader
            "sys/block/sdc/size": "garbage",
        },
    )
    (root / "sys/block/sdd").mkdir()  # no size file
    assert hardware.disks(root) == [
        {"name": "nvme0n1", "size_gb": 1.0},
        {"name": "sda", "size_gb": 100.0},
    ]


def test_a_container_without_block_devices_reports_its_root_file_system(tmp_path: Path) -> None:
    [disk] = hardware.disks(tmp_path)
    assert disk["name"] == "rootfs" and disk["size_gb"] > 0


def test_nics_skip_loopback_and_read_what_is_there(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "sys/class/net/lo/mtu": "65536",
            "sys/class/net/eth0/address": "52:54:00:12:34:56\n",
            "sys/class/net/eth0/mtu": "1500\n",
            "sys/class/net/wg0/mtu": "n/a",
        },
    )
    assert hardware.nics(root) == [
        {"name": "eth0", "mac": "52:54:00:12:34:56", "mtu": 1500, "addresses": []},
        {"name": "wg0", "mac": None, "mtu": None, "addresses": []},
    ]
    assert hardware.nics(tmp_path / "nothing") == []


def test_the_os_release_is_read_with_its_quotes_removed(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "etc/os-release": 'ID=ubuntu\nVERSION_ID="24.04"\nPRETTY_NAME="Ubuntu 24.04 LTS"\n'
            "# a comment\nNOT A PAIR\n"
        },
    )
    assert hardware.os_release(root) == {
        "id": "ubuntu",
        "version_id": "24.04",
        "pretty_name": "Ubuntu 24.04 LTS",
    }


def test_the_os_release_falls_back_to_usr_lib_and_then_to_nothing(tmp_path: Path) -> None:
    tree(tmp_path / "a", {"usr/lib/os-release": "ID=debian\n"})
    assert hardware.os_release(tmp_path / "a")["id"] == "debian"
    assert hardware.os_release(tmp_path / "b") == {"id": "", "version_id": "", "pretty_name": ""}


def test_the_report_has_the_apis_shape_and_at_least_one_mib(tmp_path: Path) -> None:
    report = hardware.collect(tmp_path)
    assert set(report) == {"cpus", "memory_mb", "disks", "nics", "os", "kernel", "machine"}
    assert report["memory_mb"] == 1 and report["cpus"] >= 1
    assert isinstance(report["kernel"], str) and report["kernel"]
