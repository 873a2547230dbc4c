"""Web settings: where to listen and who may come in."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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
    cookie_secure: bool = Field(False, description="mark the session cookie Secure (behind HTTPS)")
