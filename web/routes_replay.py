"""Replay: POST a rule (or an ad-hoc prompt, or a stored rule's id) and a time range; an
analyzer worker runs it over stored packets; GET the job for progress and results."""

import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Path as PathParam, Request, Response

from bus import messages
from bus.connection import Bus
from bus.messages import ReplayJob, ReplayResult, Rule
from bus.registry import Registry
from web.auth import Principal
from web.body import as_utc, body_schema, convert, json_response, read_object
from web.deps import Access

JobId = Annotated[str, PathParam(pattern=r"^[a-f0-9]{32}$")]
MAX_RANGE = timedelta(days=7)


class ReplayRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    rule_id: str | None = None
    rule: dict[str, Any] | None = None
    prompt: str | None = None  # shorthand for an ad-hoc natural-language rule
    camera: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 50


def replay_router(bus: Bus, access: Access) -> APIRouter:
    r = APIRouter(prefix="/api/replay", tags=["rules"])
    Admin = Annotated[Principal, Depends(access.admin)]
    Viewer = Annotated[Principal, Depends(access.viewer)]
    registry = Registry(bus)

    @r.post("", status_code=202, openapi_extra=body_schema(ReplayRequest))
    async def start(request: Request, who: Admin) -> Response:
        req = convert(await read_object(request), ReplayRequest)
        rule: Rule | None = None
        if req.rule_id:
            rule = (await registry.rules()).get(req.rule_id)
            if rule is None:
                raise HTTPException(404, f"unknown rule {req.rule_id!r}")
        elif req.rule is not None or req.prompt:
            data = req.rule if req.rule is not None else {"kind": "prompt", "id": "replay", "prompt": req.prompt}
            data = {"id": "replay", **data}
            data.setdefault("kind", "prompt" if "prompt" in data else "label")
            rule = convert(data, Rule, "rule")
        else:
            raise HTTPException(422, "give rule_id, rule or prompt")
        until = as_utc(req.until, "until") or datetime.now(timezone.utc)
        since = as_utc(req.since, "since") or until - timedelta(hours=1)
        if since >= until or until - since > MAX_RANGE:
            raise HTTPException(422, "since must be before until, at most 7 days apart")
        # Created here too, so a job queued before any analyzer worker started is not skipped.
        await bus.ensure_group(bus.keys.replay_jobs, bus.keys.REPLAYERS, start="$")
        job = ReplayJob(id=uuid.uuid4().hex, rule=rule, camera=req.camera, since=since.timestamp(),
                        until=until.timestamp(), limit=req.limit, created=time.time())
        await bus.r.hset(bus.keys.replay_state(job.id), mapping={"state": "queued", "scanned": "0"})
        await bus.r.expire(bus.keys.replay_state(job.id), 3600)
        await bus.publish(bus.keys.replay_jobs, job, maxlen=1000)
        return json_response({"job": job.id, "state": "queued"}, 202)

    @r.get("/{job_id}")
    async def status(job_id: JobId, who: Viewer) -> Response:
        state = {k.decode(): v.decode() for k, v in (await bus.r.hgetall(bus.keys.replay_state(job_id))).items()}
        if not state:
            raise HTTPException(404, "unknown replay job (or expired)")
        raw = await bus.r.lrange(bus.keys.replay_results(job_id), 0, -1)
        results = [messages.to_builtins(messages.decode(x, ReplayResult)) for x in raw]
        return json_response({"job": job_id, "state": state.get("state"), "scanned": int(state.get("scanned", 0)),
                              "error": state.get("error"), "results": results,
                              "matches": sum(1 for x in results if x["match"])})

    return r

