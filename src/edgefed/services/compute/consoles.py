"""``os-getConsoleOutput``: the guest's serial console, as ``openstack console log show``.

Nova's rules, kept here: ``length`` is an integer, a string of digits or null, at least
-1; null and -1 mean the whole log, 0 an empty one, N its tail as Nova cuts it
(``last_lines``). A server not yet placed on a host has no console (409 "not ready"),
nor one whose host does not answer (409 naming why: its agent is down or too slow); one
the hypervisor does not know (gone under us) answers 404 "Guest does not have a console
available." Control characters other than tab and newline are removed, as Nova does (a
serial console is full of carriage returns and escape sequences). The console is
readable in every state once the server has a host (Nova's libvirt driver reads its log
file), and on a locked server too: reading the console changes nothing.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from edgefed.api.auth import Principal
from edgefed.api.policy import require_write
from edgefed.api.responses import Json
from edgefed.core.errors import Conflict, NotFound, ValidationFailed
from edgefed.drivers.base import DriverError, HostUnavailable
from edgefed.services.compute.state import ComputeState
from edgefed.store.compute import ServerRecord

log = logging.getLogger("edgefed.compute.consoles")

ACTION = "os-getConsoleOutput"
POLICY = "os_compute_api:os-console-output"
# Nova's filter (api/openstack/compute/console_output.py): keeps \t and \n only.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f]")
DIGITS = re.compile(r"-?[0-9]+")


def _invalid(value: Any, why: str) -> ValidationFailed:
    return ValidationFailed(
        f"Invalid input for field/attribute length. Value: {value!r}. {why}", field="length"
    )


def parse_length(data: Any) -> int | None:
    """The number of lines asked for (None: all of them), from the action's body."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ValidationFailed(
            f"Invalid input for field/attribute {ACTION}. Value: {data!r}. "
            f"{data!r} is not of type 'object'",
            field=ACTION,
        )
    extra = sorted(set(data) - {"length"})
    if extra:
        raise ValidationFailed(
            f"Additional properties are not allowed ('{extra[0]}' was unexpected)", field=extra[0]
        )
    value = data.get("length")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _invalid(value, f"{value!r} is not of type 'integer', 'string', 'null'")
    if isinstance(value, str):
        if DIGITS.fullmatch(value) is None:
            raise _invalid(value, f"{value!r} does not match '^-?[0-9]+$'")
        number = int(value)
    else:
        number = value
    if number < -1:
        raise _invalid(value, f"{number} is less than the minimum of -1")
    return None if number == -1 else number


def last_lines(text: str, lines: int | None) -> str:
    """Nova's tail (compute manager ``_tail_log``): the last ``lines`` pieces of the log
    split at newlines, so a log that ends with one gives ``lines - 1`` lines and a final
    newline (Tempest counts ``len(output.split("\\n")) == length``). A driver that cut
    the log to its last ``lines`` lines already gives the same answer."""
    if lines is None:
        return text
    if lines == 0:
        return ""
    return "\n".join(text.split("\n")[-lines:])


async def console_output(
    state: ComputeState, principal: Principal, server: ServerRecord, data: Any
) -> Json:
    require_write(principal, server.project_id, POLICY)
    lines = parse_length(data)
    if not server.host:
        raise Conflict(f"Instance {server.id} is not ready")
    if lines == 0:
        return Json({"output": ""})
    try:
        text = await state.driver.console_output(server.id, lines=lines)
    except HostUnavailable as exc:
        raise Conflict(f"Cannot read the console of instance {server.id}: {exc}") from exc
    except DriverError as exc:
        log.info("console of %s: %s", server.id, exc)
        message = "Guest does not have a console available."
        raise NotFound(f"{message} ({exc})" if principal.is_admin else message) from exc
    return Json({"output": CONTROL.sub("", last_lines(text, lines))})
