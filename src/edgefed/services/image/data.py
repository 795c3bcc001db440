"""Image data: upload (``PUT /file``), download (``GET /file``, with HTTP Range), and
the interoperable import (``PUT /stage`` then ``POST /import`` with ``glance-direct``).

Uploads stream to a temp file through ``BlobStore`` (never the whole image in
memory) while the three digests are computed; the image becomes ``active`` only once
the blob is fsync'd and in place. A failed upload puts the image back to ``queued``.
Downloads stream the blob in chunks and honour a single byte range (resumable
transfers between sites depend on it).

Each is an action of the image resource (``images.Image``): the kit has found the
image the caller sees and, for what writes, checked the policy and the sync lock.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from edgefed.api.resource import Call, action
from edgefed.core.errors import (
    BadRequest,
    Forbidden,
    PayloadTooLarge,
    RangeNotSatisfiable,
    Unavailable,
    UnsupportedMediaType,
)
from edgefed.store.image import CHUNK_SIZE, BlobStore, ImageData, ImageRecord, Images

OCTET_STREAM = "application/octet-stream"


def _require_octet_stream(request: Request) -> None:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != OCTET_STREAM:
        raise UnsupportedMediaType(
            f"Unsupported Content-Type {media or '(none)'!r} for image data: use {OCTET_STREAM}"
        )


def _declared_length(request: Request, max_bytes: int) -> None:
    raw = request.headers.get("content-length")
    if raw is None:
        return
    try:
        length = int(raw)
    except ValueError as exc:
        raise BadRequest(f"Invalid Content-Length header {raw!r}") from exc
    if length > max_bytes:
        raise PayloadTooLarge(
            f"Image data of {length} bytes exceeds the size limit of this site ({max_bytes} bytes)."
        )


def _expected_md5(request: Request) -> str | None:
    """The ``Content-MD5`` header as hex: Glance clients send hex, RFC 1864 base64."""
    raw = request.headers.get("content-md5")
    if raw is None:
        return None
    raw = raw.strip()
    if len(raw) == 32 and all(c in "0123456789abcdefABCDEF" for c in raw):
        return raw.lower()
    try:
        digest = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"Invalid Content-MD5 header {raw!r}") from exc
    if len(digest) != 16:
        raise BadRequest(f"Invalid Content-MD5 header {raw!r}: not an MD5 digest")
    return digest.hex()


async def _receive(call: Call, record: ImageRecord, *, staging: bool) -> ImageRecord:
    request, settings = call.request, call.ctx.settings
    _require_octet_stream(request)
    _declared_length(request, settings.max_image_bytes)
    expected_md5 = _expected_md5(request)
    if not staging and (record.disk_format is None or record.container_format is None):
        raise BadRequest(
            "Properties disk_format, container_format must be set prior to saving data."
        )
    uploads = ImageData(call.ctx.store)
    await uploads.begin(record.id, status="uploading" if staging else "saving")
    blobs = BlobStore(settings.data_dir)
    try:
        pending = await blobs.write_stream(
            request.stream(), max_bytes=settings.max_image_bytes, label=record.id
        )
        if expected_md5 is not None and pending.info.md5 != expected_md5:
            blobs.discard(pending)
            raise BadRequest(
                f"Content-MD5 mismatch: the header says {expected_md5}, "
                f"the data received has {pending.info.md5}."
            )
        return await uploads.finish(
            record.id,
            pending=pending,
            blobs=blobs,
            final_status="uploading" if staging else "active",
        )
    except BaseException:
        await asyncio.shield(uploads.abort(record.id))
        raise


@action("PUT", "/file", writes=True, status_code=204, verb="upload data to")
async def upload(self: object, call: Call, repo: Images, record: ImageRecord) -> None:
    """Upload the image's data."""
    await _receive(call, record, staging=False)


@action("PUT", "/stage", writes=True, status_code=204, verb="upload data to")
async def stage(self: object, call: Call, repo: Images, record: ImageRecord) -> None:
    """Stage the image's data for a glance-direct import."""
    await _receive(call, record, staging=True)


@action("POST", "/import", writes=True, status_code=202, verb="import")
async def import_image(self: object, call: Call, repo: Images, record: ImageRecord) -> None:
    """Import staged data (glance-direct)."""
    body = await call.body()
    method = body.get("method") if isinstance(body, dict) else None
    name = method.get("name") if isinstance(method, dict) else None
    if name != "glance-direct":
        raise BadRequest(
            f"Import method {name!r} is not supported here; supported: glance-direct "
            "(field 'method.name')."
        )
    await ImageData(call.ctx.store).activate_staged(record.id)


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``(start, end)`` inclusive for one byte range; None to serve the whole image.

    Unknown units are ignored (whole image, as RFC 9110 says); a malformed, multiple
    or unsatisfiable byte range is a 416.
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes":
        return None
    spec = spec.strip()
    if "," in spec:
        raise _unsatisfiable("multiple ranges are not supported", size)
    first, dash, last = spec.partition("-")
    if not dash or not (first.isdigit() or (not first and last.isdigit())):
        raise _unsatisfiable(f"malformed range {header!r}", size)
    if last and not last.isdigit():
        raise _unsatisfiable(f"malformed range {header!r}", size)
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(f"range {header!r} selects no bytes", size)
        return max(0, size - suffix), size - 1
    start = int(first)
    if start >= size:
        raise _unsatisfiable(f"range {header!r} starts past the end ({size} bytes)", size)
    end = int(last) if last else size - 1
    if end < start:
        raise _unsatisfiable(f"range {header!r} ends before it starts", size)
    return start, min(end, size - 1)


def _unsatisfiable(reason: str, size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"Requested range not satisfiable: {reason}.",
        headers={"Content-Range": f"bytes */{size}"},
    )


async def _read_file(path: Path, start: int, length: int) -> AsyncIterator[bytes]:
    fh = await asyncio.to_thread(open, path, "rb")
    try:
        await asyncio.to_thread(fh.seek, start)
        remaining = length
        while remaining > 0:
            chunk = await asyncio.to_thread(fh.read, min(CHUNK_SIZE, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk
    finally:
        fh.close()


@action("GET", "/file")
async def download(self: object, call: Call, repo: Images, record: ImageRecord) -> Response:
    """Download the image's data (one byte range at most)."""
    if record.status == "deactivated" and not call.principal.is_admin:
        raise Forbidden(
            "The requested image has been deactivated. Image data download is forbidden."
        )
    if record.status not in ("active", "deactivated") or record.blob_sha256 is None:
        return Response(status_code=204)
    path = BlobStore(call.ctx.settings.data_dir).path(record.blob_sha256)
    if not path.exists():
        raise Unavailable(f"The data of image {record.id} is missing from this site's store.")
    size = record.size or 0
    headers = {"Accept-Ranges": "bytes", "Content-Type": OCTET_STREAM}
    ranged = call.request.headers.get("range")
    byte_range = parse_range(ranged, size) if ranged is not None else None
    if byte_range is None:
        headers["Content-Length"] = str(size)
        if record.checksum:
            headers["Content-MD5"] = record.checksum
        return StreamingResponse(_read_file(path, 0, size), headers=headers)
    start, end = byte_range
    headers["Content-Length"] = str(end - start + 1)
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(
        _read_file(path, start, end - start + 1), status_code=206, headers=headers
    )
