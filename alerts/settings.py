"""Alerts settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AlertsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tick_s: float = Field(1.0, gt=0, le=60, description="how often quiet alerts are checked for resolution")
    retention_s: int = Field(7 * 86400, ge=60, description="events and alerts older than this are trimmed (MINID)")
