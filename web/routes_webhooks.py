"""Webhook endpoints, deliveries, dead letters and replay (admin role throughout: endpoint
URLs and payloads are operator data). Secrets are write-only: no response carries them."""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Any, Callable, Literal

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Path as PathParam, Query, Request, Response

from bus.connection import Bus, redact_url
from bus.messages import WebhookEndpoint
from bus.names import ID_PATTERN
from bus.webhooks import TargetRefused, WebhookStore, check_url, delivery_id, secret_problem
from web.body import body_schema, convert, read_object

EndpointId = Annotated[str, PathParam(pattern=ID_PATTERN)]
DeliveryId = Annotated[str, PathParam(pattern=r"^dlv_[0-9a-f]{32}$")]
RESERVED = {"deliveries", "dead-letters"}  # path segments of this router


def _json(data: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(data), status_code=status, media_type="application/json")


def public(ep: WebhookEndpoint) -> dict:
    d = msgspec.to_builtins(ep)
    d.pop("secret", None)
    d["url"] = redact_url(ep.url)  # a token in the query string stays private too
    d["has_secret"] = bool(ep.secret)
    return d


class ReplayDeadLetters(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    ids: list[Annotated[str, msgspec.Meta(min_length=1, max_length=200)]] | None = None  # None: every one


def _endpoint(data: dict[str, Any]) -> WebhookEndpoint:
    # Errors name the field, never echo the value: a bad secret is not repeated back.
    ep = convert(data, WebhookEndpoint, "invalid webhook endpoint")
    if ep.id in RESERVED:
        raise HTTPException(422, f"{ep.id!r} is reserved by the API; choose another id")
    problem = secret_problem(ep.secret)
    if problem:
        raise HTTPException(422, f"invalid webhook endpoint: secret: {problem}")
    try:
        check_url(ep.url, ep.allow_private)
    except TargetRefused as exc:
        raise HTTPException(422, f"url refused: {exc}") from None
    return ep


def webhooks_router(bus: Bus, viewer: Callable, admin: Callable) -> APIRouter:
    store = WebhookStore(bus)
    r = APIRouter(prefix="/api/webhooks", tags=["webhooks"])

    @r.get("")
    async def list_endpoints(who=Depends(admin)) -> Response:
        eps = sorted((await store.endpoints()).values(), key=lambda e: e.id)
        return _json({"items": [public(e) for e in eps]})

    @r.post("", status_code=201, openapi_extra=body_schema(WebhookEndpoint))
    async def create_endpoint(request: Request, who=Depends(admin)) -> Response:
        data = await read_object(request, empty={})
        if not str(data.get("id") or "").strip():
            data["id"] = f"wh-{secrets.token_hex(4)}"  # the id is optional: one is made up
        ep = _endpoint(data)  # reserved ids and secrets are checked there (POST and PUT alike)
        if await store.endpoint(ep.id):
            raise HTTPException(409, "an endpoint with this id exists; PUT replaces it")
        await store.put_endpoint(ep)
        return _json(public(ep), 201)

    # Static paths before /{endpoint_id} so they are not taken for ids.
    @r.get("/deliveries")
    async def deliveries(
        who=Depends(admin), limit: int = Query(50, ge=1, le=500),
        status: Literal["pending", "delivering", "delivered", "dead"] | None = None,
        endpoint: str | None = Query(None, pattern=ID_PATTERN),
    ) -> Response:
        return _json({"items": await store.deliveries(limit=limit, status=status, endpoint=endpoint)})

    @r.get("/deliveries/{delivery_id}")
    async def delivery(delivery_id: DeliveryId, who=Depends(admin)) -> Response:
        d = await store.get(delivery_id, body=True)
        if d is None:
            raise HTTPException(404, "no such delivery (or expired after its retention)")
        return _json(d)

    @r.get("/dead-letters")
    async def dead_letters(who=Depends(admin), limit: int = Query(100, ge=1, le=1000)) -> Response:
        return _json({"items": await store.dead(limit)})

    @r.post("/dead-letters/replay", openapi_extra=body_schema(ReplayDeadLetters, required=False))
    async def replay(request: Request, who=Depends(admin)) -> Response:
        """Body `{"ids": [...]}` replays those; an empty body replays every dead letter."""
        req = convert(await read_object(request, empty={}), ReplayDeadLetters)
        n = await store.replay(req.ids or None)
        return _json({"replayed": n})

    @r.post("/{endpoint_id}/ping", status_code=202)
    async def ping(endpoint_id: EndpointId, who=Depends(admin)) -> Response:
        """Queue a signed `ping` delivery to check an endpoint end to end (whatever its filter)."""
        if await store.endpoint(endpoint_id) is None:
            raise HTTPException(404, "no such endpoint")
        pid = secrets.token_hex(8)
        body = msgspec.json.encode({"v": 1, "type": "ping", "id": f"ping-{pid}", "endpoint": endpoint_id,
                                    "at": time.time()})
        dlv = delivery_id(endpoint_id, f"ping:{pid}")
        await store.enqueue(endpoint_id, "ping", f"ping:{pid}", body, dlv)
        return _json({"delivery": dlv}, 202)

    @r.get("/{endpoint_id}")
    async def get_endpoint(endpoint_id: EndpointId, who=Depends(admin)) -> Response:
        ep = await store.endpoint(endpoint_id)
        if ep is None:
            raise HTTPException(404, "no such endpoint")
        return _json(public(ep))

    @r.put("/{endpoint_id}", openapi_extra=body_schema(WebhookEndpoint))
    async def put_endpoint(endpoint_id: EndpointId, request: Request, who=Depends(admin)) -> Response:
        data = await read_object(request, empty={})
        old = await store.endpoint(endpoint_id)
        if "secret" not in data and old is not None:
            data["secret"] = old.secret  # write-only: leaving it out keeps the current one
        data.setdefault("id", endpoint_id)
        ep = _endpoint(data)
        if ep.id != endpoint_id:
            raise HTTPException(422, "the body's id differs from the URL's")
        await store.put_endpoint(ep)
        return _json(public(ep))

    @r.delete("/{endpoint_id}", status_code=204)
    async def delete_endpoint(endpoint_id: EndpointId, who=Depends(admin)) -> Response:
        if not await store.remove_endpoint(endpoint_id):
            raise HTTPException(404, "no such endpoint")
        return Response(status_code=204)

    return r
