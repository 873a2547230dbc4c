"""Request bodies decoded into bus message types (one definition of each type: bus/messages.py).

Every JSON body goes through `read_object` (size, JSON, an object) and `convert` (the type;
unknown keys are errors that name the key, like the config file's)."""

from datetime import datetime, timezone
from typing import Any, TypeVar

import msgspec
from fastapi import HTTPException, Request, Response

from bus.messages import Invalid, parse

T = TypeVar("T")
MAX_BODY = 64 * 1024


async def read_object(request: Request, *, empty: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body as a JSON object. `empty`: what an empty body means (else it is an error)."""
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise HTTPException(413, f"body larger than {MAX_BODY} bytes")
    if not raw and empty is not None:
        return dict(empty)
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise HTTPException(400, "body is not valid JSON") from None
    except RecursionError:
        raise HTTPException(400, "body is nested too deeply") from None
    if not isinstance(data, dict):
        raise HTTPException(422, "body must be a JSON object")
    return data


def convert(data: dict[str, Any], kind: type[T], what: str = "body") -> T:
    data.pop("v", None)
    try:
        return parse(data, kind)
    except Invalid as exc:
        raise HTTPException(422, f"{what}: {exc}") from None
    except RecursionError:
        raise HTTPException(400, "body is nested too deeply") from None


async def read_body(request: Request, kind: type[T], *, patch_of: T | None = None) -> T:
    data = await read_object(request)
    if patch_of is not None:
        data = {**msgspec.to_builtins(patch_of), **data}
    return convert(data, kind)


# Definitions the request bodies refer to; web/app.py adds them to the spec's components.
BODY_COMPONENTS: dict[str, Any] = {}


def body_schema(kind: type, *, required: bool = True) -> dict[str, Any]:
    """OpenAPI requestBody for a msgspec type, so /docs shows what to send (and the fuzz test
    knows what to generate)."""
    (schema,), components = msgspec.json.schema_components([kind], ref_template="#/components/schemas/{name}")
    BODY_COMPONENTS.update(components)
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}


def with_body_components(spec: dict[str, Any]) -> dict[str, Any]:
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in BODY_COMPONENTS.items():
        schemas.setdefault(name, schema)
    return spec


def json_response(data: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(data), status_code=status, media_type="application/json")


EARLIEST = datetime(1970, 1, 2, tzinfo=timezone.utc)
LATEST = datetime(9999, 12, 30, tzinfo=timezone.utc)


def as_utc(when: datetime | None, what: str) -> datetime | None:
    """A time from a query or body as aware UTC (one without a zone is UTC), within what
    stream ids and epoch seconds can hold (year 1 is a 422, not a crash)."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    if not EARLIEST <= when <= LATEST:
        raise HTTPException(422, f"{what}: must be between 1970 and 9999")
    return when
