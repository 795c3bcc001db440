"""Flavor extra specs: ``/flavors/{id}/os-extra_specs`` (read by all, written by admins).

Keys and values are bounded as in Nova (1-255 characters of letters, digits, ``_-:. ``;
values strings or numbers, stored as strings). A flavor a sync source delivered is
read-only here, its extra specs included (the repository refuses, ``Locked``).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.policy import require_admin
from edgefed.api.responses import Json
from edgefed.core.errors import BadRequest, NotFound, ValidationFailed
from edgefed.services.compute.body import invalid, read_json
from edgefed.services.compute.lookups import visible_flavor
from edgefed.services.compute.microversion import MicroversionRoute
from edgefed.services.compute.state import ComputeState, compute_state

router = APIRouter(route_class=MicroversionRoute)

SPEC_KEY_RE = re.compile(r"[\w\-: .]{1,255}")
MAX_SPEC_VALUE = 255


def _spec_values(data: Any) -> dict[str, str]:
    if not isinstance(data, dict):
        raise BadRequest("Malformed extra specs: an object is expected")
    result: dict[str, str] = {}
    for key, value in data.items():
        if not SPEC_KEY_RE.fullmatch(str(key)):
            raise invalid("extra_specs", f"key {key!r} must be 1-255 of letters, digits, '_-:. '")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise invalid("extra_specs", f"value of {key!r} must be a string or a number")
        text = str(value)
        if len(text) > MAX_SPEC_VALUE:
            raise invalid(
                "extra_specs", f"value of {key!r} is longer than {MAX_SPEC_VALUE} characters"
            )
        result[str(key)] = text
    return result


@router.get("/v2.1/flavors/{flavor_id}/os-extra_specs")
async def list_extra_specs(
    flavor_id: str,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    flavor = await visible_flavor(state, principal, flavor_id)
    return Json({"extra_specs": dict(flavor.extra_specs)})


@router.post("/v2.1/flavors/{flavor_id}/os-extra_specs")
async def create_extra_specs(
    flavor_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    require_admin(principal, "os_compute_api:os-flavor-extra-specs:create")
    body = await read_json(request)
    if "extra_specs" not in body:
        raise ValidationFailed(
            "Invalid input: 'extra_specs' is a required property", field="extra_specs"
        )
    specs = _spec_values(body["extra_specs"])
    flavor = await visible_flavor(state, principal, flavor_id)
    await state.flavors.update(flavor, extra_specs={**flavor.extra_specs, **specs})
    return Json({"extra_specs": specs})


@router.get("/v2.1/flavors/{flavor_id}/os-extra_specs/{key}")
async def show_extra_spec(
    flavor_id: str,
    key: str,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    flavor = await visible_flavor(state, principal, flavor_id)
    if key not in flavor.extra_specs:
        raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
    return Json({key: flavor.extra_specs[key]})


@router.put("/v2.1/flavors/{flavor_id}/os-extra_specs/{key}")
async def update_extra_spec(
    flavor_id: str,
    key: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    require_admin(principal, "os_compute_api:os-flavor-extra-specs:update")
    body = await read_json(request)
    if len(body) != 1 or key not in body:
        raise BadRequest("Request body and URI mismatch")
    specs = _spec_values(body)
    flavor = await visible_flavor(state, principal, flavor_id)
    await state.flavors.update(flavor, extra_specs={**flavor.extra_specs, **specs})
    return Json(specs)


@router.delete("/v2.1/flavors/{flavor_id}/os-extra_specs/{key}")
async def delete_extra_spec(
    flavor_id: str,
    key: str,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Response:
    require_admin(principal, "os_compute_api:os-flavor-extra-specs:delete")
    flavor = await visible_flavor(state, principal, flavor_id)
    if key not in flavor.extra_specs:
        raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
    await state.flavors.update(
        flavor, extra_specs={k: v for k, v in flavor.extra_specs.items() if k != key}
    )
    return Response(status_code=200)
