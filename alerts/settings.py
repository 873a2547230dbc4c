"""Alerts settings: lifecycle timing, webhook delivery, optional MQTT."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bus.webhooks import TargetRefused, check_url

EventFilter = Literal["*", "alert.*", "alert.open", "alert.update", "alert.resolved", "event", "ping"]


class WebhookEndpointConfig(BaseModel):
    """A webhook endpoint seeded from the config (the API can add more at run time)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    url: str = Field(..., min_length=8, max_length=2048)
    secret_env: str = Field(..., min_length=1, description="name of the environment variable holding the secret")
    events: list[EventFilter] = Field(default_factory=lambda: ["alert.*"])
    cameras: list[str] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list)
    min_severity: Literal["info", "warning", "critical"] = "info"
    allow_private: bool = Field(False, description="allow private/loopback/link-local targets (SSRF guard)")

    @model_validator(mode="after")
    def _url(self) -> "WebhookEndpointConfig":
        if self.id in ("deliveries", "dead-letters"):
            raise ValueError(f"id {self.id!r} is reserved by the API (a path under /api/webhooks)")
        try:
            check_url(self.url, self.allow_private)
        except TargetRefused as exc:
            raise ValueError(f"url refused: {exc}") from None
        return self


class WebhookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoints: list[WebhookEndpointConfig] = Field(default_factory=list)
    max_attempts: int = Field(8, ge=1, le=50, description="tries before a delivery becomes a dead letter")
    backoff_base_s: float = Field(2.0, gt=0, le=3600, description="delay before the 2nd try; doubles each time")
    backoff_max_s: float = Field(900.0, gt=0, le=86400, description="longest delay between two tries")
    jitter: float = Field(0.5, ge=0, le=1, description="share of each delay that is random (0: none)")
    connect_timeout_s: float = Field(3.0, gt=0, le=60)
    timeout_s: float = Field(10.0, gt=0, le=120, description="whole request, headers to body")
    lease_s: float = Field(60.0, gt=0, le=3600, description="a claimed delivery is tried again after this if its sender died (at least timeout_s + 2)")
    concurrency: int = Field(16, ge=1, le=256, description="requests in flight per alerts process")
    max_response_bytes: int = Field(1024, ge=0, le=65536, description="at most this much of a response is read")
    retention_s: int = Field(7 * 86400, ge=60, description="delivered deliveries are kept this long for listing")
    legacy_signature: bool = Field(
        True, description="also send the old Vigil-Signature header beside the Standard Webhooks ones (webhook-id, "
        "webhook-timestamp, webhook-signature); turn off once every receiver verifies the standard headers",
    )


class MqttSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password_env: str | None = Field(None, description="environment variable holding the password")
    topic_prefix: str = Field("vigil", pattern=r"^[A-Za-z0-9_/-]{1,64}$")
    discovery_prefix: str = Field("homeassistant", pattern=r"^[A-Za-z0-9_/-]{1,64}$")
    tls: bool = False


class AlertsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        u = urlsplit(v)
        if u.scheme not in ("http", "https") or not u.hostname or u.query or u.fragment:
            raise ValueError("must be an http(s) URL without query or fragment, e.g. https://vigil.example.com")
        if u.username or u.password:
            raise ValueError("must not hold credentials (receivers send their own token)")
        return v.rstrip("/")

    tick_s: float = Field(1.0, gt=0, le=3600, description="how often quiet alerts are checked for resolution")
    retention_s: int = Field(7 * 86400, ge=60, description="events and alerts older than this are trimmed (MINID)")
    timezone: str | None = Field(None, description="IANA zone for rule schedules; unset: the machine's local time")
    fast_min_area: float = Field(0.002, ge=0, le=1, description="fast rules: least motion area that opens at onset")
    onset_max_age_s: float = Field(10.0, gt=0, description="activity starts older than this (a backlog) no longer open fast alerts")
    evidence_wait_s: float = Field(120.0, gt=0, le=3600, description="a packet's verdict is waited for this long before "
                                   "the camera's later verdicts go on without it (the analyzer says at once when it skips one)")
    activity_timeout_s: float = Field(180.0, gt=0, le=86400, description="an activity the scheduler says nothing about "
                                      "for this long is taken as ended (its scheduler is gone)")
    public_url: str | None = Field(None, description="base URL receivers reach the web API at (https://vigil.example.com); "
                                   "snapshot and frame links in webhooks and MQTT start with it. Unset: http://<web.host>:<web.port>")
    leader_ttl_s: float = Field(5.0, ge=1, le=60, description="a standby alerts process takes over this long after the leader died")
    lock_ttl_s: float = Field(10.0, gt=0, le=120, description="per rule+scope lock (several alerts processes)")
    webhooks: WebhookSettings = WebhookSettings()
    mqtt: MqttSettings = MqttSettings()
