"""A small circuit breaker: after N consecutive failures, refuse calls for a while, then let
one probe through; its success closes the circuit, its failure opens it again."""

from __future__ import annotations

import time
from typing import Callable, Literal

State = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    def __init__(self, failures: int, reset_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = failures
        self.reset_s = reset_s
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self._probing = False
        self.opened_count = 0

    @property
    def state(self) -> State:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self.opened_at >= self.reset_s else "open"

    def ready(self) -> bool:
        """Would a call be let through now (without taking the probe)?"""
        st = self.state
        return st == "closed" or (st == "half-open" and not self._probing)

    def allow(self) -> bool:
        st = self.state
        if st == "closed":
            return True
        if st == "half-open" and not self._probing:
            self._probing = True
            return True
        return False

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._probing = False

    def failure(self) -> None:
        self.failures += 1
        if self._probing or self.failures >= self.threshold:
            if self.opened_at is None or self._probing:
                self.opened_count += 1
            self.opened_at = self.clock()
            self._probing = False
