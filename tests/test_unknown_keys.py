"""A misspelt key is an error everywhere: every config section (found by walking the schema, so a
new section is covered the day it is added), every rule kind, cameras, webhooks, and every API
body, with the key named in the error."""

from __future__ import annotations

import types
import typing
from typing import Any

import httpx
import msgspec
import pytest
from pydantic import BaseModel

from bus.messages import Rule
from tests.conftest import ROOT, run_cli
from vigil.config import ConfigError, VigilConfig, parse_config

TOKEN = "unknown-keys-admin-token-123456"
RULE_KINDS = {"label": {"label": "person"}, "prompt": {"prompt": "a person climbs the fence"},
              "count": {"label": "car"}, "zone": {"zones": ["gate"]}, "motion": {}, "dwell": {"min_s": 5}}


def _models(model: type[BaseModel], path: str = "") -> list[tuple[str, type[BaseModel]]]:
    """Every settings model reachable from `model` with the YAML path to it (lists: item 0)."""
    out = [(path, model)]
    for name, field in model.model_fields.items():
        sub = f"{path}.{name}" if path else name
        kinds = [field.annotation]
        if typing.get_origin(field.annotation) in (typing.Union, types.UnionType):
            kinds = list(typing.get_args(field.annotation))
        for kind in kinds:
            origin, args = typing.get_origin(kind), typing.get_args(kind)
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                out += _models(kind, sub)
            elif origin in (list, dict) and isinstance(args[-1], type) and issubclass(args[-1], BaseModel):
                # list[M] items are addressed as .0, dict[str, M] values as .x
                out += _models(args[-1], sub + (".0" if origin is list else ".x"))
    return out


def _minimal(model: type[BaseModel]) -> dict[str, Any]:
    """The fewest keys that make an item of `model` valid (for list items such as tokens)."""
    samples = {"name": "x", "id": "x", "role": "admin", "sha256": "0" * 64, "url": "https://example.com/hook",
               "secret_env": "HOOK_SECRET"}
    return {n: samples[n] for n, f in model.model_fields.items() if f.is_required()}


def _nest(path: str, leaf: dict[str, Any], models: dict[str, type[BaseModel]]) -> dict[str, Any]:
    """{"a": {"b": [leaf]}} for path "a.b.0"; list items get their other required keys."""
    parts = path.split(".")
    node: Any = leaf
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in ("0", "x"):
            item = {**_minimal(models[".".join(parts[: i + 1])]), **node}
            node = [item] if parts[i] == "0" else {"x": item}
        else:
            node = {parts[i]: node}
    return node


SECTIONS = [(p, m) for p, m in _models(VigilConfig) if p]


@pytest.mark.parametrize("path", [p for p, _ in SECTIONS] + [""])
def test_every_config_section_rejects_a_misspelt_key(path):
    models = dict(SECTIONS)
    data = _nest(path, {"smaple_fps": 1}, models) if path else {"smaple_fps": 1}
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    want = f"{path}.smaple_fps: unknown key" if path else "smaple_fps: unknown key"
    assert want in str(err.value), str(err.value)


def test_the_walk_found_every_section():
    paths = {p for p, _ in SECTIONS}
    assert {"redis", "ingest", "scheduler", "scheduler.motion", "analyzer", "analyzer.openai",
            "analyzer.minicpm", "alerts", "web"} <= paths, paths


@pytest.mark.parametrize("kind", sorted(RULE_KINDS))
def test_every_rule_kind_rejects_a_misspelt_key(kind):
    rule = {"kind": kind, "id": "r", **RULE_KINDS[kind]}
    parse_config({"rules": [rule]})  # valid as written
    for typo in ("colldown_s", "quite_s"):
        with pytest.raises(ConfigError, match=rf"rules\.0\.{typo}: unknown key"):
            parse_config({"rules": [{**rule, typo: 5}]})
    with pytest.raises(ConfigError, match=r"rules\.0\.schedule\.0\.dys: unknown key"):
        parse_config({"rules": [{**rule, "schedule": [{"start": "22:00", "end": "06:00", "dys": [1]}]}]})


def test_cameras_reject_a_misspelt_key():
    with pytest.raises(ConfigError, match=r"cameras\.1\.smaple_fps: unknown key"):
        parse_config({"cameras": [{"id": "a", "url": "x.mp4"}, {"id": "b", "url": "y.mp4", "smaple_fps": 2}]})


def test_every_rule_kind_is_covered():
    assert set(RULE_KINDS) == {t.__struct_config__.tag for t in typing.get_args(Rule)}


def test_check_config_names_the_key(tmp_path):
    cfg = tmp_path / "typo.yaml"
    cfg.write_text("rules:\n  - id: r\n    label: person\n    colldown_s: 60\n")
    res = run_cli(["check-config", "-c", str(cfg)])
    assert res.returncode == 2 and "rules.0.colldown_s: unknown key" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


# ----------------------------------------------------------------------------- API bodies
@pytest.fixture
async def api(bus, monkeypatch):
    from web.app import create_app
    from web.settings import WebSettings

    monkeypatch.setenv("VIGIL_TOKEN", TOKEN)
    app = create_app(bus, WebSettings())
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vigil",
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            yield client


CAMERA = {"id": "cam1", "url": str(ROOT / "missing.mp4")}
RULE = {"kind": "label", "id": "r1", "label": "person"}
HOOK = {"id": "hook1", "url": "https://example.com/hook", "secret": "s" * 24}


async def test_every_api_body_rejects_a_misspelt_key(api):
    # The valid bodies first, so the routes that need something to exist find it.
    for method, url, body in [("POST", "/api/cameras", CAMERA), ("POST", "/api/rules", RULE),
                              ("POST", "/api/webhooks", HOOK)]:
        res = await api.request(method, url, json=body)
        assert res.status_code == 201, res.text
    cases = [
        ("POST", "/api/cameras", {**CAMERA, "id": "cam2", "smaple_fps": 2}, "smaple_fps"),
        ("PUT", "/api/cameras/cam1", {**CAMERA, "smaple_fps": 2}, "smaple_fps"),
        ("PATCH", "/api/cameras/cam1", {"smaple_fps": 2}, "smaple_fps"),
        ("POST", "/api/rules", {**RULE, "id": "r2", "colldown_s": 5}, "colldown_s"),
        ("PUT", "/api/rules/r1", {**RULE, "quite_s": 5}, "quite_s"),
        ("POST", "/api/rules", {**RULE, "id": "r3", "schedule": [{"start": "01:00", "end": "02:00", "dys": []}]},
         "schedule.0.dys"),
        ("POST", "/api/webhooks", {**HOOK, "id": "hook2", "evnets": ["*"]}, "evnets"),
        ("PUT", "/api/webhooks/hook1", {**HOOK, "min_severty": "info"}, "min_severty"),
        ("POST", "/api/webhooks/dead-letters/replay", {"idz": []}, "idz"),
        ("POST", "/api/replay", {"rule_id": "r1", "limt": 5}, "limt"),
        ("POST", "/api/replay", {"rule": {**RULE, "colldown_s": 1}}, "colldown_s"),
        ("POST", "/api/login", {"token": TOKEN, "remember": True}, "remember"),
    ]
    for method, url, body, key in cases:
        res = await api.request(method, url, json=body)
        assert 400 <= res.status_code < 500, (method, url, res.status_code, res.text)
        assert key in res.text, (method, url, res.text)
    # Nothing was stored by the refused bodies.
    cams = (await api.get("/api/cameras")).json()
    assert [c["id"] for c in cams] == ["cam1"] and "smaple_fps" not in msgspec.json.encode(cams).decode()
    rules = (await api.get("/api/rules")).json()["items"]
    assert [r["id"] for r in rules] == ["r1"]
