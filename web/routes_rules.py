"""Rule CRUD over the registry in Redis: the alerts stage picks changes up within a second,
no restart. Reading needs a token; writing needs the admin role."""

from __future__ import annotations

from typing import Annotated, Callable

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Path as PathParam, Request, Response

from bus import messages
from bus.connection import Bus
from bus.limits import MAX_PROMPT_RULES, MAX_RULES
from bus.messages import PromptRule, Rule
from bus.names import ID_PATTERN
from bus.registry import Registry
from web.body import body_schema, convert, read_object
from web.prometheus import analyzer_snapshots

RuleId = Annotated[str, PathParam(pattern=ID_PATTERN)]


def _json(data: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(data), status_code=status, media_type="application/json")


async def parse_rule(request: Request) -> Rule:
    data = await read_object(request)
    if "kind" not in data:  # as in the config: a prompt makes a natural-language rule
        data = {"kind": "prompt" if "prompt" in data else "label", **data}
    return convert(data, Rule, "invalid rule")


CPU_ONLY = ("no analyzer runs a model (every live analyzer worker uses the cpu backend): this "
            "natural-language rule can never match; use a structured rule (label, count, zone, motion, "
            "dwell) or the minicpm/openai backend")


async def analyzer_backends(bus: Bus) -> set[str]:
    """Backends of the analyzer workers alive now (from their metrics snapshots)."""
    return {str(snap["backend"]) for snap in await analyzer_snapshots(bus) if snap.get("backend")}


async def warnings_for(bus: Bus, rules: list[Rule]) -> dict[str, str]:
    if not any(isinstance(x, PromptRule) for x in rules):
        return {}
    backends = await analyzer_backends(bus)
    if not backends or backends != {"cpu"}:
        return {}
    return {x.id: CPU_ONLY for x in rules if isinstance(x, PromptRule)}


def rules_router(bus: Bus, viewer: Callable, admin: Callable) -> APIRouter:
    reg = Registry(bus)
    r = APIRouter(prefix="/api/rules", tags=["rules"])

    def view(rule: Rule, warnings: dict[str, str]) -> dict:
        d = messages.to_builtins(rule)
        if rule.id in warnings:
            d["warning"] = warnings[rule.id]
        return d

    async def room_for(rule: Rule) -> None:
        """Caps (bus/limits.py): every rule costs work on every event, every natural-language
        rule a part of every packet's prompt."""
        rules = await reg.rules()
        others = [x for x in rules.values() if x.id != rule.id]
        if len(others) >= MAX_RULES:
            raise HTTPException(409, f"at most {MAX_RULES} rules; remove one first")
        if isinstance(rule, PromptRule) and sum(isinstance(x, PromptRule) for x in others) >= MAX_PROMPT_RULES:
            raise HTTPException(409, f"at most {MAX_PROMPT_RULES} natural-language (prompt) rules; remove one first")

    @r.get("")
    async def list_rules(who=Depends(viewer)) -> Response:
        rules = sorted((await reg.rules()).values(), key=lambda x: x.id)
        warnings = await warnings_for(bus, rules)
        return _json({"items": [view(x, warnings) for x in rules]})

    @r.get("/{rule_id}")
    async def get_rule(rule_id: RuleId, who=Depends(viewer)) -> Response:
        rule = (await reg.rules()).get(rule_id)
        if rule is None:
            raise HTTPException(404, "no such rule")
        return _json(view(rule, await warnings_for(bus, [rule])))

    @r.post("", status_code=201, openapi_extra=body_schema(Rule))
    async def create_rule(request: Request, who=Depends(admin)) -> Response:
        rule = await parse_rule(request)
        await room_for(rule)
        # HSETNX: two admins creating one id at once cannot overwrite each other.
        if not await bus.r.hsetnx(bus.keys.rules, rule.id, messages.encode(rule)):
            raise HTTPException(409, "a rule with this id exists; PUT /api/rules/{id} replaces it")
        return _json(view(rule, await warnings_for(bus, [rule])), 201)

    @r.put("/{rule_id}", openapi_extra=body_schema(Rule))
    async def put_rule(rule_id: RuleId, request: Request, who=Depends(admin)) -> Response:
        rule = await parse_rule(request)
        if rule.id != rule_id:
            raise HTTPException(422, "the body's id differs from the URL's")
        await room_for(rule)
        await reg.put_rule(rule)
        return _json(view(rule, await warnings_for(bus, [rule])))

    @r.delete("/{rule_id}", status_code=204)
    async def delete_rule(rule_id: RuleId, who=Depends(admin)) -> Response:
        if not await reg.remove_rule(rule_id):
            raise HTTPException(404, "no such rule")
        return Response(status_code=204)

    return r
