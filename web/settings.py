"""Web settings: where to listen and who may come in."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=64)
    role: Literal["viewer", "admin"] = "viewer"
    sha256: str = Field(..., pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the token (tokens are stored hashed)")
    expires: datetime | None = Field(None, description="ISO-8601; after this the token (and its sessions) stop working")


class WebSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    tokens: list[TokenEntry] = Field(default_factory=list, description="API tokens; VIGIL_TOKEN adds an admin token")
    session_hours: float = Field(12.0, gt=0, le=24 * 30)
    cookie_secure: bool = Field(
        False, description="always mark the session cookie Secure (it is anyway when the request came over TLS, "
        "directly or as a trusted proxy says)")
    trusted_proxies: list[str] = Field(
        default_factory=list, description="addresses (or CIDRs) of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; empty: none, the TCP peer is the client")
    allowed_origins: list[str] = Field(
        default_factory=list, description="origins besides Vigil's own (the Host it is reached by) that may send "
        "state-changing requests and open the cookie websocket, e.g. https://vigil.example.com behind a proxy "
        "that rewrites Host")
    auth_failures: int = Field(10, ge=1, le=10_000, description="failed token tries (login, Bearer, websocket) "
                               "per client address per auth_window_s before it gets 429")
    auth_window_s: float = Field(60.0, gt=0, le=86400)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        v = [o.lower().rstrip("/") for o in v]
        for o in v:
            if not (o.startswith("http://") or o.startswith("https://")) or o.count("/") > 2:
                raise ValueError(f"{o!r}: an origin is scheme://host[:port], nothing after it")
        return v
