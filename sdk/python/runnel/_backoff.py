from __future__ import annotations

import random


class Backoff:
    """Exponentially growing delays with "equal jitter" (between half and
    all of each), so clients dropped together do not return in lockstep."""

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap
        self._cur = 0.0

    def next(self) -> float:
        self._cur = self.base if self._cur == 0 else min(2 * self._cur, self.cap)
        half = self._cur / 2
        return half + random.uniform(0, half)

    def reset(self) -> None:
        self._cur = 0.0
