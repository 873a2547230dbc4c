"""Reconnect delays: exponential with jitter, capped, and reset after a healthy period."""

from __future__ import annotations

import random


class Backoff:
    """`base * factor**attempt`, capped at `cap`, each delay scaled by a random factor in
    [1 - jitter, 1] so a fleet of cameras behind one dead NVR does not reconnect in lockstep."""

    def __init__(self, base: float = 0.5, cap: float = 30.0, factor: float = 2.0, jitter: float = 0.3,
                 rng: random.Random | None = None) -> None:
        if base <= 0 or cap < base or factor < 1 or not 0 <= jitter < 1:
            raise ValueError("backoff needs 0 < base <= cap, factor >= 1, 0 <= jitter < 1")
        self.base, self.cap, self.factor, self.jitter = base, cap, factor, jitter
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        raw = min(self.cap, self.base * self.factor ** min(self.attempt, 64))
        self.attempt += 1
        return raw * (1.0 - self.jitter * self._rng.random())

    def reset(self) -> None:
        self.attempt = 0
