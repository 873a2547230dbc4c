"""Request bodies decoded into bus message types (one definition of each type: bus/messages.py)."""

from typing import Any, TypeVar

import msgspec
from fastapi import HTTPException, Request, Response

T = TypeVar("T")
MAX_BODY = 64 * 1024


async def read_body(request: Request, kind: type[T], *, patch_of: T | None = None) -> T:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise HTTPException(413, f"body larger than {MAX_BODY} bytes")
    try:
        data = msgspec.json.decode(raw) if raw else None
    except msgspec.DecodeError:
        raise HTTPException(400, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise HTTPException(422, "body must be a JSON object")
    if patch_of is not None:
        data = {**msgspec.to_builtins(patch_of), **data}
    data.pop("v", None)
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        raise HTTPException(422, str(exc)) from None


def body_schema(kind: type) -> dict[str, Any]:
    """OpenAPI requestBody for a msgspec type, so /docs shows what to send."""
    (schema,), components = msgspec.json.schema_components([kind], ref_template="#/components/schemas/{name}")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {**schema, "components": components}}}}}


def json_response(data: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(data), status_code=status, media_type="application/json")
