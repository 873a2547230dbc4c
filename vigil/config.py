"""The one YAML schema: each stage's own settings model, composed; cameras and rules seed
the registries in Redis. Errors name the key and the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from alerts.settings import AlertsSettings
from analyzer.settings import AnalyzerSettings
from bus.limits import MAX_PROMPT_RULES, MAX_RULES
from bus.messages import Camera, Invalid, PromptRule, Rule, parse
from bus.urls import SourceRefused, check_source
from ingest.settings import IngestSettings
from recorder.settings import RecorderSettings
from scheduler.settings import SchedulerSettings
from web.settings import WebSettings


class ConfigError(ValueError):
    pass


class RedisSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, description="redis://... ; unset (and REDIS_URL unset): embedded redis-server")
    prefix: str = Field("vigil:", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    persist_dir: str | None = Field(None, description="embedded server: keep data here with AOF everysec")


def _convert(value: Any, kind: type, index: int) -> Any:
    try:
        return parse(value, kind, strict=False)
    except Invalid as exc:
        # Carry the key path inside the list item to _format as "@0.sample_fps|reason".
        raise ValueError(f"@{index}.{exc.path}|{exc.reason}".replace(".|", "|")) from None


class VigilConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    redis: RedisSettings = RedisSettings()
    cameras: list[Camera] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    ingest: IngestSettings = IngestSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    analyzer: AnalyzerSettings = AnalyzerSettings()
    alerts: AlertsSettings = AlertsSettings()
    recorder: RecorderSettings = RecorderSettings()
    web: WebSettings = WebSettings()

    @field_validator("cameras", mode="before")
    @classmethod
    def _cameras(cls, v: Any) -> list[Camera]:
        if not isinstance(v, list):
            raise ValueError("must be a list of cameras")
        cams = [_convert(c, Camera, i) for i, c in enumerate(v)]
        ids = [c.id for c in cams]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"duplicate camera id(s): {', '.join(sorted(dup))}")
        return cams

    @field_validator("rules", mode="before")
    @classmethod
    def _rules(cls, v: Any) -> list[Rule]:
        if not isinstance(v, list):
            raise ValueError("must be a list of rules")
        out = []
        for i, r in enumerate(v):
            if isinstance(r, dict) and "kind" not in r:
                r = {"kind": "prompt" if "prompt" in r else "label", **r}
            out.append(_convert(r, Rule, i))
        return out


    @model_validator(mode="after")
    def _limits(self) -> "VigilConfig":
        # Sources against the ingest section's policy: a bad camera URL is an error here, in
        # check-config, not a camera that fails at run time (or a stage that crash-loops).
        policy = self.ingest.policy()
        for i, cam in enumerate(self.cameras):
            try:
                check_source(cam.url, policy)
            except SourceRefused as exc:
                raise ValueError(f"cameras.{i}.url: {exc}") from None
        if len(self.rules) > MAX_RULES:
            raise ValueError(f"rules: at most {MAX_RULES} rules (got {len(self.rules)})")
        prompts = sum(isinstance(r, PromptRule) for r in self.rules)
        if prompts > MAX_PROMPT_RULES:
            raise ValueError(f"rules: at most {MAX_PROMPT_RULES} natural-language (prompt) rules (got {prompts})")
        return self


def _format(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        if msg.startswith("@") and "|" in msg:
            sub, _, msg = msg[1:].partition("|")
            loc = f"{loc}.{sub}"
        lines.append(f"{loc}: {msg}" if loc else msg)
    return "\n".join(lines)


def parse_config(data: Any) -> VigilConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("config: the top level must be a mapping of sections")
    try:
        return VigilConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format(exc)) from None


def load_config(path: str | Path | None) -> VigilConfig:
    if path is None:
        return VigilConfig()
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{p}:{where} not valid YAML: {getattr(exc, 'problem', exc)}") from None
    return parse_config(data)
