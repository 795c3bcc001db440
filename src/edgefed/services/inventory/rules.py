"""The inventory's validation rules, after StarlingX sysinv and the EdgeWorker spec.

Each rule raises with a message that names it, so an operator reading a 4xx knows
which rule refused the request:

- hostnames are RFC 1123 host names (labels of letters, digits and '-', not starting
  or ending with '-', each at most 63 characters, at most 255 in all); controllers are
  ``controller-0`` or ``controller-1`` (sysinv's rule);
- personalities are ``controller``, ``worker``, ``storage``, ``edgeworker``;
- an edgeworker has no BMC and is never upgraded by the site (the spec's "functions
  that will not be supported on edgeworker": host-upgrade and BMC integration);
- a personality is set once; afterwards only a locked ``worker`` may become an
  ``edgeworker`` (the spec's ``host-update <id> personality=edgeworker``);
- labels are Kubernetes labels (the spec's label assignment).
"""

from __future__ import annotations

import re

from edgefed.core.errors import Conflict, ValidationFailed
from edgefed.core.ids import is_uuid

PERSONALITIES = ("controller", "worker", "storage", "edgeworker")
COMPUTE_PERSONALITIES = frozenset({"worker", "edgeworker"})
CONTROLLER_HOSTNAMES = ("controller-0", "controller-1")
BM_TYPES = ("ipmi", "redfish", "dynamic")
# Path words below /edge/v1/hosts that a hostname may not shadow.
RESERVED_HOSTNAMES = frozenset({"enrollment-tokens", "agent"})

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_K8S_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_K8S_PREFIX = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")


def check_hostname(hostname: str) -> str:
    """An RFC 1123 host name, lower-cased (host names are case-insensitive)."""
    name = hostname.strip()
    if not name:
        raise ValidationFailed("hostname must not be empty (RFC 1123)", field="hostname")
    if len(name) > 255:
        raise ValidationFailed(
            "hostname is longer than 255 characters (RFC 1123)", field="hostname"
        )
    for label in name.rstrip(".").split("."):
        if not _LABEL.match(label):
            raise ValidationFailed(
                f"hostname {hostname!r} is not a valid RFC 1123 host name: each label must be "
                "1-63 letters, digits or '-', and must not start or end with '-'",
                field="hostname",
            )
    if name.rstrip(".").replace(".", "").isdigit():
        raise ValidationFailed(
            f"hostname {hostname!r} is not a valid RFC 1123 host name (all numeric)",
            field="hostname",
        )
    lowered = name.rstrip(".").lower()
    if lowered in RESERVED_HOSTNAMES:
        raise ValidationFailed(f"hostname {hostname!r} is reserved", field="hostname")
    if is_uuid(lowered):
        # Hosts are found by id or hostname: a hostname shaped like an id would shadow one.
        raise ValidationFailed(
            f"hostname {hostname!r} is shaped like a host id (a UUID); choose another",
            field="hostname",
        )
    return lowered


def check_personality(personality: str) -> str:
    if personality not in PERSONALITIES:
        raise ValidationFailed(
            f"personality {personality!r} is not one of {', '.join(PERSONALITIES)}",
            field="personality",
        )
    return personality


def check_hostname_for_personality(hostname: str, personality: str | None) -> None:
    if personality == "controller" and hostname not in CONTROLLER_HOSTNAMES:
        raise ValidationFailed(
            f"a controller must be named {' or '.join(CONTROLLER_HOSTNAMES)}, not {hostname!r}",
            field="hostname",
        )
    if personality != "controller" and hostname in CONTROLLER_HOSTNAMES:
        raise ValidationFailed(
            f"hostname {hostname!r} is reserved for controllers", field="hostname"
        )


def check_bmc_allowed(personality: str | None, *, bmc_given: bool) -> None:
    if bmc_given and personality == "edgeworker":
        raise ValidationFailed(
            "BMC settings are not supported on edgeworker hosts: an edgeworker is managed "
            "in-band, without out-of-band BMC integration",
            field="bm_type",
        )


def check_bm_type(bm_type: str | None) -> None:
    if bm_type is not None and bm_type not in BM_TYPES:
        raise ValidationFailed(
            f"bm_type {bm_type!r} is not one of {', '.join(BM_TYPES)}", field="bm_type"
        )


def check_upgrade_allowed(personality: str | None) -> None:
    if personality == "edgeworker":
        raise Conflict(
            "host-upgrade is not supported on edgeworker hosts: their operating system and "
            "packages are managed by their administrator, not by the site"
        )


def check_personality_change(*, current: str | None, new: str, locked: bool) -> None:
    """The spec lets an unprovisioned host take any personality, and a worker become an
    edgeworker; anything else would re-provision a running host behind its back."""
    if current is None or current == new:
        return
    if current == "worker" and new == "edgeworker":
        if not locked:
            raise Conflict(
                "personality can only be changed from worker to edgeworker while the host "
                "is locked; lock it first"
            )
        return
    raise Conflict(
        f"personality cannot be changed from {current} to {new}: once set, only a worker "
        "may become an edgeworker"
    )


def check_label(key: str, value: str) -> None:
    prefix, _, name = key.rpartition("/")
    if (prefix and not _K8S_PREFIX.match(prefix)) or not _K8S_NAME.match(name):
        raise ValidationFailed(
            f"label key {key!r} is not a valid Kubernetes label key: an optional DNS prefix "
            "and '/', then 1-63 letters, digits, '-', '_' or '.', starting and ending "
            "alphanumeric",
            field="labels",
        )
    if value and not _K8S_NAME.match(value):
        raise ValidationFailed(
            f"label value {value!r} for {key!r} is not a valid Kubernetes label value: "
            "at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric",
            field="labels",
        )


def check_allocation_ratio(name: str, value: float) -> None:
    if not 0.0 < value <= 1000.0:
        raise ValidationFailed(f"{name} must be above 0 and at most 1000", field=name)
