"""Reading Nova request bodies with Nova's own error messages.

Nova validates with JSON schema and answers 400 with sentences clients show to users
("Invalid input for field/attribute name. ..."). Handlers read the body as a dict and
check it field by field with these helpers, so the messages name the field.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from edgefed.api.bodies import NOVA_BODY, read_object
from edgefed.core.errors import ValidationFailed


async def read_json(request: Request) -> dict[str, Any]:
    return await read_object(request, NOVA_BODY)


def section(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if not isinstance(value, dict):
        raise ValidationFailed(f"Invalid input: '{key}' is a required property", field=key)
    return value


def invalid(field: str, why: str) -> ValidationFailed:
    return ValidationFailed(f"Invalid input for field/attribute {field}. Value: {why}", field=field)


def opt_str(
    data: dict[str, Any], key: str, *, max_len: int = 255, allow_empty: bool = True
) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(key, f"{value!r}. {value!r} is not of type 'string'")
    if len(value) > max_len:
        raise invalid(key, f"{value[:40]!r}... is too long (at most {max_len} characters)")
    if not allow_empty and not value.strip():
        raise invalid(key, f"{value!r}. It must not be empty or only spaces")
    return value


def req_str(data: dict[str, Any], key: str, *, max_len: int = 255) -> str:
    value = opt_str(data, key, max_len=max_len, allow_empty=False)
    if value is None:
        raise ValidationFailed(f"Invalid input: '{key}' is a required property", field=key)
    return value


def opt_int(
    data: dict[str, Any], key: str, *, minimum: int = 0, maximum: int = 2**31 - 1
) -> int | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise invalid(key, f"{value!r}. {value!r} is not of type 'integer', 'string'")
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise invalid(key, f"{value!r}. {value!r} is not of type 'integer', 'string'") from exc
    if isinstance(value, float) and value != number:
        raise invalid(key, f"{value!r} is not an integer")
    if number < minimum:
        raise invalid(key, f"{number}. {number} is less than the minimum of {minimum}")
    if number > maximum:
        raise invalid(key, f"{number}. {number} is greater than the maximum of {maximum}")
    return number


def opt_bool(data: dict[str, Any], key: str) -> bool | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise invalid(key, f"{value!r}. {value!r} is not of type 'boolean'")


def string_map(data: dict[str, Any], key: str, *, max_len: int = 255) -> dict[str, str]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise invalid(key, f"{value!r}. {value!r} is not of type 'object'")
    result: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not 1 <= len(k) <= max_len:
            raise invalid(key, f"metadata key {k!r} must be a string of 1-{max_len} characters")
        if not isinstance(v, str) or len(v) > max_len:
            raise invalid(key, f"metadata value for {k!r} must be a string of at most {max_len}")
        result[k] = v
    return result
