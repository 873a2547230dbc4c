"""Request bodies decoded into bus message types (one definition of each type: bus/messages.py).

Every JSON body goes through `read_object` (size, JSON, an object) and `convert` (the type;
unknown keys are errors that name the key, like the config file's)."""

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
    if not isinstance(data, dict):
        raise HTTPException(422, "body must be a JSON object")
    return data


def convert(data: dict[str, Any], kind: type[T], what: str = "body") -> T:
    data.pop("v", None)
    try:
        return parse(data, kind)
    except Invalid as exc:
        raise HTTPException(422, f"{what}: {exc}") from None


async def read_body(request: Request, kind: type[T], *, patch_of: T | None = None) -> T:
    data = await read_object(request)
    if patch_of is not None:
        data = {**msgspec.to_builtins(patch_of), **data}
    return convert(data, kind)


def body_schema(kind: type) -> dict[str, Any]:
    """OpenAPI requestBody for a msgspec type, so /docs shows what to send."""
    (schema,), components = msgspec.json.schema_components([kind], ref_template="#/components/schemas/{name}")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {**schema, "components": components}}}}}


def json_response(data: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(data), status_code=status, media_type="application/json")
