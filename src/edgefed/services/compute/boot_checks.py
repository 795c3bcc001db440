"""Whether this site can honour a boot request: everything a user can get wrong, checked
before the answer.

Nova validates a create against what exists before it answers 202: the image (active,
visible to the caller; fetched from the scope's image site when the request says so),
the flavor (visible, large enough for the image), on a QEMU site an image it can run
(raw or qcow2 with its kernel and ramdisk), the key pair, each network or port
(the caller's, shared, or free), the availability zone, and the project's quota for
every server asked for. A boot that passes is recorded in BUILD and handed to the
lifecycle; anything a user could fix is a 400 (409 for a port in use, 403 over quota)
now, not an ERROR server later.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from edgefed.api.auth import Principal
from edgefed.api.context import site_context
from edgefed.core.errors import BadRequest, Conflict, NotFound
from edgefed.services.compute.boot_request import BootRequest, Networks
from edgefed.services.compute.image_source import image_for_boot
from edgefed.services.compute.lookups import visible_flavor
from edgefed.services.compute.quota_limits import check_server_quota
from edgefed.services.compute.state import ComputeState
from edgefed.store.compute import FlavorRecord
from edgefed.store.image import ImageRecord


@dataclass(frozen=True)
class CheckedBoot:
    """What a boot request resolved to at this site."""

    image: ImageRecord | None  # None: boots from a volume
    flavor: FlavorRecord
    key_data: str | None
    zone: str | None  # the zone's name, without a ":host" suffix


async def check_boot(
    state: ComputeState,
    request: Request,
    principal: Principal,
    boot: BootRequest,
    *,
    project_id: str,
) -> CheckedBoot:
    """The image, flavor, key and zone of ``boot``, or the error Nova answers."""
    image = None
    if boot.image_ref is not None:
        # The local image, or the one the request's scope says to fetch (and cache) from.
        # None as well for an image the caller may not see: Nova answers as if it did not
        # exist.
        image = await image_for_boot(
            site_context(request), state.images, request, principal, boot.image_ref
        )
        if image is None:
            raise BadRequest(f"Image {boot.image_ref} could not be found.")
        if image.status != "active":
            raise BadRequest(f"Image {boot.image_ref} is not active.")
    try:
        flavor = await visible_flavor(state, principal, boot.flavor_id)
    except NotFound as exc:
        raise BadRequest(f"Flavor {boot.flavor_id} could not be found.") from exc
    if image is not None:
        if image.min_ram and flavor.ram < image.min_ram:
            raise BadRequest("Flavor's memory is too small for requested image.")
        if image.min_disk and flavor.disk and flavor.disk < image.min_disk:
            raise BadRequest("Flavor's disk is too small for requested image.")
        check_image_fits(image, flavor)
        if state.ctx.settings.compute_driver == "qemu":
            await check_runnable(state, image)
    if boot.volumes:
        await check_volumes(state, principal, boot)
    key_data = None
    if boot.key_name is not None:
        keypair = await state.keypairs.get(user_id=principal.user_id, name=boot.key_name)
        if keypair is None:
            raise BadRequest("Invalid key_name provided.")
        key_data = keypair.public_key
    await check_networks(state, principal, boot.networks, project_id=project_id)
    zone = None
    if boot.zone:
        zone = boot.zone.split(":", 1)[0]
        if zone not in state.scheduler.zones():
            raise BadRequest("The requested availability zone is not available")
    await check_server_quota(
        state,
        project_id=project_id,
        count=boot.max_count,
        vcpus=flavor.vcpus,
        ram=flavor.ram,
        metadata_items=len(boot.metadata),
    )
    return CheckedBoot(image=image, flavor=flavor, key_data=key_data, zone=zone)


async def check_volumes(state: ComputeState, principal: Principal, boot: BootRequest) -> None:
    """Each volume asked for exists for the caller and is free; each image a volume is
    to be made of exists for the caller and is active."""
    volumes, images = state.ctx.volumes, state.ctx.images
    if volumes is None or images is None:
        raise BadRequest("This site has no volume service: servers cannot have volumes.")
    for asked in boot.volumes:
        if asked.volume_id is not None:
            found = await volumes.find(volume_id=asked.volume_id, principal=principal)
            if found is None:
                raise BadRequest(f"Volume {asked.volume_id} could not be found.")
            if found.status != "available" and not found.multiattach:
                raise BadRequest(
                    f"Block Device Mapping is Invalid: volume {asked.volume_id} is "
                    f"{found.status}, not available."
                )
        if asked.image_id is not None:
            image = await images.find(image_id=asked.image_id, principal=principal)
            if image is None:
                raise BadRequest(f"Image {asked.image_id} could not be found.")
            if image.status != "active":
                raise BadRequest(f"Image {asked.image_id} is not active.")
            if asked.size_gb is not None and image.min_disk > asked.size_gb:
                raise BadRequest(
                    f"Block Device Mapping is Invalid: volume_size {asked.size_gb} GB is "
                    f"smaller than image {asked.image_id}'s min_disk {image.min_disk} GB."
                )


async def check_networks(
    state: ComputeState, principal: Principal, networks: Networks, *, project_id: str
) -> None:
    """Each requested network is the project's or shared; each port the project's own
    and free (an admin sees every port, but a server uses its own project's, as in Nova)."""
    if not isinstance(networks, list):
        return
    for item in networks:
        if "uuid" in item:
            net = await state.networks.get_network(item["uuid"])
            if net is None or (
                net.project_id != project_id and not net.shared and not principal.is_admin
            ):
                raise BadRequest(f"Network {item['uuid']} could not be found.")
            continue
        port = await state.networks.get_port(item["port"])
        if port is None or (port.project_id != project_id and not principal.is_admin):
            raise BadRequest(f"Port id {item['port']} could not be found.")
        if port.project_id != project_id:
            raise BadRequest(
                f"Port {item['port']} not usable for the new server: it belongs to "
                f"project {port.project_id}, the server to project {project_id}."
            )
        if port.device_id:
            raise Conflict(f"Port {item['port']} is still in use.")


GiB = 1024**3
# What the qemu driver boots: a disk image in these formats, with no container.
RUNNABLE_DISK_FORMATS = ("raw", "qcow2")
RUNNABLE_CONTAINERS = (None, "bare")
# A kernel_id / ramdisk_id image (Glance's aki / ari, or plain data).
BOOT_FILE_FORMATS = (None, "aki", "ari", "raw")


def check_image_fits(image: ImageRecord, flavor: FlavorRecord) -> None:
    """Nova's FlavorDiskSmallerThanImage: a flavor with a root disk must hold the
    image's data and its virtual size (0 GB: the disk takes the image's size)."""
    if not flavor.disk:
        return
    flavor_bytes = flavor.disk * GiB
    for what, size in (("image", image.size), ("image's virtual size", image.virtual_size)):
        if size is not None and size > flavor_bytes:
            raise BadRequest(
                f"Flavor's disk is too small for requested image. Flavor disk is "
                f"{flavor_bytes} bytes, {what} is {size} bytes."
            )


async def check_runnable(state: ComputeState, image: ImageRecord) -> None:
    """The image is one the site's hypervisor (QEMU) can boot, and so are the kernel
    and ramdisk images it names."""
    if image.disk_format is not None and image.disk_format not in RUNNABLE_DISK_FORMATS:
        raise BadRequest(
            f"Image {image.id} is in disk format {image.disk_format}, which this site cannot "
            f"run (it runs {' and '.join(RUNNABLE_DISK_FORMATS)})."
        )
    if image.container_format not in RUNNABLE_CONTAINERS:
        raise BadRequest(
            f"Image {image.id} is in container format {image.container_format}, which this "
            "site cannot run (it runs bare images)."
        )
    if not image.blob_sha256:
        raise BadRequest(f"Image {image.id} has no data at this site.")
    for key in ("kernel_id", "ramdisk_id"):
        ref = image.properties.get(key)
        if not ref:
            continue
        found = await state.images.get(str(ref))
        if found is None or found.status != "active" or not found.blob_sha256:
            raise BadRequest(f"Image {image.id} names {key} {ref}, which has no data here.")
        if found.disk_format not in BOOT_FILE_FORMATS:
            raise BadRequest(
                f"Image {image.id} names {key} {ref}, in disk format {found.disk_format}, "
                "which is no kernel or ramdisk format (aki, ari, raw)."
            )
    if image.properties.get("ramdisk_id") and not image.properties.get("kernel_id"):
        raise BadRequest(f"Image {image.id} names a ramdisk_id but no kernel_id.")
