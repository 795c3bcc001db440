"""What a relocation carries besides the server's disk, in the disk's own transfer: the
volumes that move with it (``"volumes": "move"``) and the kernel and ramdisk of a
kernel-boot guest (its image's ``kernel_id``/``ramdisk_id``).

At the source, once the guest is stopped, each is appended to the ``.out`` file after
the disk (a volume as its volume service writes it out: its allocated blocks only,
qcow2), and the file is named with its *parts* (kind, offset, size, sha256). The one
transfer (chunks, resumable, the whole file's sha256 checked) carries them all; the
destination checks each part's sha256 too, writes the parts to their own files and cuts
the file back to the disk, which becomes the server's image as before. So a cut in the
middle of a volume resumes where the destination's bytes end, as in the disk.

A kernel or ramdisk the destination holds already (the same image id, the same data)
is not sent: the offer's answer names it, and the destination's image is used.
At the destination the moved volumes are made again with the same id and plugged into
the new server at their devices; until the move is done they go with that server if it
is deleted (an abort), then they keep their own ``delete_on_termination``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
from pathlib import Path
from typing import Any

from edgefed.api.volumes import MovedVolume
from edgefed.core.errors import BadRequest, Conflict, EdgefedError
from edgefed.services.compute.boot_checks import BOOT_FILE_FORMATS
from edgefed.services.compute.state import ComputeState
from edgefed.store.compute import (
    RelocationRecord,
    Relocations,
    ServerRecord,
    ServerVolumes,
    VolumeMapping,
)
from edgefed.store.image import blob_path

BOOT_FILES = ("kernel", "ramdisk")
KINDS = ("volume", *BOOT_FILES)
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def part_path(state: ComputeState, relocation_id: str, index: int) -> Path:
    return state.ctx.settings.data_dir / "relocations" / f"{relocation_id}.part-{index}"


# -- the source: what the offer names, what the file carries -------------------------------


async def moved_volumes(state: ComputeState, mappings: list[VolumeMapping]) -> list[dict[str, Any]]:
    """The volumes that move, as the destination makes them and plugs them in."""
    catalog = state.ctx.volumes
    assert catalog is not None  # checked with the choice
    found = []
    for mapping in mappings:
        described = await catalog.describe_for_move(volume_id=mapping.volume_id)
        found.append({**described.to_json(), "device": mapping.device, "bdm_id": mapping.bdm_id,
                      "tag": mapping.tag,
                      "delete_on_termination": mapping.delete_on_termination})  # fmt: skip
    return found


async def boot_files(state: ComputeState, server: ServerRecord) -> dict[str, Any]:
    """The kernel and ramdisk the guest boots with, and its command line (empty for a
    guest that boots from its disk)."""
    image = await state.images.get(server.image_id) if server.image_id else None
    if image is None:
        return {}
    found: dict[str, Any] = {}
    for kind in BOOT_FILES:
        ref = image.properties.get(f"{kind}_id")
        related = await state.images.get(str(ref)) if ref else None
        if related is not None and related.blob_sha256:
            found[kind] = {"image_id": related.id, "sha256": related.blob_sha256}
    cmdline = image.properties.get("os_command_line")
    if found and isinstance(cmdline, str):
        found["os_command_line"] = cmdline
    return found


def _append(target: Path, source: Path) -> tuple[str, int]:
    """Append ``source`` to ``target``, fsync'd: (sha256, size) of what was appended."""
    h, size = hashlib.sha256(), 0
    with open(source, "rb") as src, open(target, "ab") as dst:
        while block := src.read(1 << 20):
            h.update(block)
            dst.write(block)
            size += len(block)
        dst.flush()
        os.fsync(dst.fileno())
    return h.hexdigest(), size


async def append_parts(state: ComputeState, record: RelocationRecord, target: Path) -> list[Any]:
    """The moved volumes' data, then the kernel and ramdisk the destination lacks,
    appended to the disk in ``target`` (the guest is stopped); their parts."""
    parts: list[dict[str, Any]] = []
    offset = target.stat().st_size
    catalog = state.ctx.volumes
    scratch = target.with_suffix(".export")
    try:
        for volume in record.details.get("moved_volumes") or []:
            assert catalog is not None
            path, fmt = await catalog.export_for_move(volume_id=volume["id"], directory=scratch)
            try:
                sha, size = await asyncio.to_thread(_append, target, path)
            finally:
                await asyncio.to_thread(path.unlink, True)
            parts.append({"kind": "volume", "volume_id": volume["id"], "format": fmt,
                          "offset": offset, "size": size, "sha256": sha})  # fmt: skip
            offset += size
    finally:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(scratch.rmdir)
    held = set(record.details.get("held_images") or [])
    boot = record.details.get("boot") or {}
    for kind in BOOT_FILES:
        if kind not in boot or boot[kind]["image_id"] in held:
            continue
        image = await state.images.get(boot[kind]["image_id"])
        if image is None or not image.blob_sha256:
            raise BadRequest(f"The {kind} {boot[kind]['image_id']} has no data here any more.")
        path = blob_path(state.ctx.settings.data_dir, image)
        sha, size = await asyncio.to_thread(_append, target, path)
        parts.append({"kind": kind, "image_id": image.id, "name": image.name,
                      "disk_format": image.disk_format,
                      "container_format": image.container_format,
                      "offset": offset, "size": size, "sha256": sha})  # fmt: skip
        offset += size
    return parts


def progress(record: RelocationRecord) -> list[dict[str, Any]]:
    """Each moved volume's phase and bytes, for the journal."""
    parts = {p.get("volume_id"): p for p in record.details.get("parts") or []}
    deleted = set(record.details.get("volumes_deleted") or [])
    shown = []
    for volume in record.details.get("moved_volumes") or []:
        part = parts.get(volume["id"])
        size = int(part["size"]) if part else None
        done = 0 if part is None else max(0, min(size or 0, record.done_bytes - part["offset"]))
        if record.phase in ("failed", "aborted"):
            phase = "left here"
        elif volume["id"] in deleted or record.phase == "done":
            phase = "moved"
        elif record.phase in ("starting", "finishing"):
            phase = "attached there"
        elif part is not None and size is not None and done >= size:
            phase = "sent"
        elif part is not None and done > 0:
            phase = "sending"
        else:
            phase = "waiting"
        shown.append({"id": volume["id"], "phase": phase, "bytes_done": done,
                      "bytes_total": size})  # fmt: skip
    return shown


# -- the destination: the offer's checks, the parts taken out, the volumes made -------------


def named_parts(raw: Any, size: int) -> list[dict[str, Any]]:
    """The parts the source names with the file, checked: in order, up to its end."""
    if not raw:
        return []
    if not isinstance(raw, list):
        raise BadRequest("Invalid parts of the relocation's file: a list is expected.")
    end = size
    for part in reversed(raw):
        ok = (
            isinstance(part, dict)
            and part.get("kind") in KINDS
            and all(isinstance(part.get(k), int) for k in ("offset", "size"))
            and isinstance(part.get("sha256"), str)
            and SHA256.match(part["sha256"]) is not None
            and part["offset"] >= 0
            and part["offset"] + part["size"] == end
        )
        if not ok:
            raise BadRequest(f"Invalid part of the relocation's file: {part!r}")
        end = part["offset"]
    return list(raw)


def _split(staged: Path, parts: list[dict[str, Any]], targets: list[Path]) -> str | None:
    """Each part to its own file (fsync'd), then the file cut back to the disk; the
    kind of the first part whose sha256 is not the one named, else None."""
    with open(staged, "rb+") as src:
        for part, target in zip(parts, targets, strict=True):
            h = hashlib.sha256()
            src.seek(part["offset"])
            left = part["size"]
            with open(target, "wb") as dst:
                while left > 0:
                    block = src.read(min(left, 1 << 20))
                    if not block:
                        break
                    h.update(block)
                    dst.write(block)
                    left -= len(block)
                dst.flush()
                os.fsync(dst.fileno())
            if h.hexdigest() != part["sha256"]:
                return f"{part['kind']} {part.get('volume_id') or part.get('image_id')}"
        src.truncate(parts[0]["offset"])
        src.flush()
        os.fsync(src.fileno())
    return None


async def split_parts(state: ComputeState, record: RelocationRecord, staged: Path) -> None:
    """The parts out of the staged file, which keeps the disk alone; Conflict when one's
    sha256 is not the one named (the whole file's matched: the naming is wrong, and
    sending it again would not help: a commit's 400 asks for that)."""
    parts = record.details.get("parts") or []
    if not parts:
        return
    targets = [part_path(state, record.id, i) for i in range(len(parts))]
    wrong = await asyncio.to_thread(_split, staged, parts, targets)
    if wrong is not None:
        raise Conflict(f"The {wrong} of relocation {record.id} does not have its sha256.")


def _kept(part: dict[str, Any], key: str, allowed: tuple[str | None, ...], default: str) -> str:
    """A kernel's or ramdisk's format as the source names it, if it is one of those."""
    value = part.get(key) or default
    if value not in allowed:
        raise Conflict(f"The {part['kind']} of the relocation is in {key} {value!r}.")
    return str(value)


async def boot_properties(state: ComputeState, record: RelocationRecord) -> dict[str, Any]:
    """The disk image's ``kernel_id``/``ramdisk_id``/``os_command_line``: an image held
    here already, or one made of the part sent (hidden, the project's, for the server)."""
    boot = record.details.get("boot") or {}
    if not boot:
        return {}
    made = dict(record.details.get("boot_images") or {})
    values = record.details["values"]
    for index, part in enumerate(record.details.get("parts") or []):
        if part["kind"] not in BOOT_FILES or part["kind"] in made:
            continue
        image = await state.images.create(
            owner=record.project_id,
            name=f"{part.get('name') or part['kind']} ({values['name']}, relocated from "
            f"{record.peer_site})",
            disk_format=_kept(part, "disk_format", BOOT_FILE_FORMATS, "raw"),
            container_format=_kept(part, "container_format", ("aki", "ari", "bare"), "bare"),
            visibility="private",
            os_hidden=True,
            properties={"instance_uuid": record.server_id, "edge_relocation": record.id},
            data_file=part_path(state, record.id, index),
            data_dir=state.ctx.settings.data_dir,
            max_bytes=state.ctx.settings.max_image_bytes,
        )  # fmt: skip
        made[part["kind"]] = image.id
        await Relocations(state.ctx.store).merge_details(record.id, {"boot_images": made})
    found: dict[str, Any] = {}
    for kind in BOOT_FILES:
        if kind in boot:
            found[f"{kind}_id"] = made.get(kind, boot[kind]["image_id"])
    if "os_command_line" in boot:
        found["os_command_line"] = boot["os_command_line"]
    return found


async def held_images(state: ComputeState, boot: Any) -> list[str]:
    """The kernel and ramdisk the source names that this site has already, the same
    data (not sent)."""
    held = []
    for kind in BOOT_FILES:
        wanted = boot.get(kind) if isinstance(boot, dict) else None
        if not isinstance(wanted, dict) or not isinstance(wanted.get("image_id"), str):
            continue
        image = await state.images.get(wanted["image_id"])
        if (
            image is not None
            and image.status == "active"
            and (image.blob_sha256 == wanted.get("sha256"))
        ):
            held.append(image.id)
    return held


def arriving(raw: Any) -> list[MovedVolume]:
    if not raw:
        return []
    if not isinstance(raw, list):
        raise BadRequest("Invalid volumes in the relocation: a list is expected.")
    try:
        return [MovedVolume.from_json(item) for item in raw]
    except ValueError as exc:
        raise BadRequest(f"Invalid volumes in the relocation: {exc}") from exc


async def receive_volumes(state: ComputeState, record: RelocationRecord) -> list[dict[str, Any]]:
    """The moved volumes made here from their parts; their mappings on the new server
    (connected by its build at their devices; deleted with it until the move is done).
    Conflict when one cannot be made (a commit's 400 would have the file sent again)."""
    moved = record.details.get("moved_volumes") or []
    if not moved:
        return []
    catalog = state.ctx.volumes
    if catalog is None:
        raise Conflict(f"Site {state.ctx.name} has no volume service.")
    index = {p.get("volume_id"): i for i, p in enumerate(record.details.get("parts") or [])}
    mappings = []
    for volume in moved:
        i = index.get(volume["id"])
        if i is None:
            raise Conflict(f"The data of volume {volume['id']} was not sent.")
        part = record.details["parts"][i]
        try:
            await catalog.receive(
                project_id=record.project_id, user_id=record.user_id,
                volume=MovedVolume.from_json(volume), data_file=part_path(state, record.id, i),
                disk_format=part["format"],
            )  # fmt: skip
        except BadRequest as exc:  # its type gone meanwhile, its data unreadable
            raise Conflict(str(exc)) from exc
        mappings.append(VolumeMapping(
            volume_id=volume["id"], device=volume["device"], bdm_id=volume.get("bdm_id") or "",
            tag=volume.get("tag"), delete_on_termination=True,
        ).to_json())  # fmt: skip
    return mappings


async def volumes_settled(state: ComputeState, record: RelocationRecord) -> None:
    """The move is done: each moved volume keeps its own ``delete_on_termination``."""
    repo = ServerVolumes(state.ctx.store)
    for volume in record.details.get("moved_volumes") or []:
        keep = bool(volume.get("delete_on_termination"))
        try:
            await repo.change(record.server_id, volume["id"], delete_on_termination=keep)
        except EdgefedError:
            pass  # detached meanwhile


async def drop_received(state: ComputeState, record: RelocationRecord) -> None:
    """An abort: the moved volumes made here that no server holds, and the part files."""
    if state.ctx.volumes is not None:
        for volume in record.details.get("moved_volumes") or []:
            await state.ctx.volumes.delete(volume_id=volume["id"])
    drop_part_files(state, record)


def drop_part_files(state: ComputeState, record: RelocationRecord) -> None:
    for i in range(len(record.details.get("parts") or [])):
        part_path(state, record.id, i).unlink(missing_ok=True)
