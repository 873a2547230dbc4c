"""Camera leases for ingest workers: one worker owns a camera; a dead worker's leases expire
(the compare-and-set lease set in bus/lease.py, on ingest's keys)."""

from __future__ import annotations

from bus.connection import Bus
from bus.lease import LeaseSet, fair_share


class Leases(LeaseSet):
    def __init__(self, bus: Bus, worker: str, ttl_s: float, poll_s: float = 1.0) -> None:
        super().__init__(bus, worker, ttl_s, poll_s, lease_key=bus.keys.ingest_lease,
                         members_key=bus.keys.ingest_workers)


__all__ = ["Leases", "fair_share"]
