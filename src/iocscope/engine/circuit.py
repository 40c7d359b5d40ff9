"""A circuit breaker per source: stop calling a source that keeps failing.

After ``threshold`` failures in a row the circuit opens and the source is not
called for ``cooldown`` seconds; then one call is let through (half open).
Its success closes the circuit; its failure opens it again for twice as long,
up to ``MAX_COOLDOWN``. An unreachable provider thus costs one timeout per
cool-down instead of one per lookup.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

MAX_COOLDOWN = 900.0


class CircuitState(StrEnum):
    """Whether a source is called."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class _Circuit:
    failures: int = 0
    open_until: float = 0.0
    cooldown: float = 0.0
    trial_running: bool = False


class CircuitBreaker:
    """Tracks consecutive failures of each source; not shared between processes."""

    def __init__(
        self,
        threshold: int = 5,
        cooldown: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = threshold
        self._base_cooldown = cooldown
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}

    def retry_in(self, source: str) -> float | None:
        """Return None when ``source`` may be called now, else the seconds until it may."""
        circuit = self._circuits.get(source)
        if circuit is None or circuit.failures < self._threshold:
            return None
        remaining = circuit.open_until - self._clock()
        if remaining > 0:
            return remaining
        if circuit.trial_running:
            return circuit.cooldown
        circuit.trial_running = True  # half open: this caller makes the trial call
        return None

    def record_success(self, source: str) -> None:
        self._circuits.pop(source, None)

    def record_failure(self, source: str) -> None:
        circuit = self._circuits.setdefault(source, _Circuit())
        circuit.failures += 1
        circuit.trial_running = False
        if circuit.failures < self._threshold:
            return
        circuit.cooldown = (
            self._base_cooldown
            if circuit.cooldown == 0
            else min(circuit.cooldown * 2, MAX_COOLDOWN)
        )
        circuit.open_until = self._clock() + circuit.cooldown

    def state(self, source: str) -> CircuitState:
        circuit = self._circuits.get(source)
        if circuit is None or circuit.failures < self._threshold:
            return CircuitState.CLOSED
        if circuit.open_until > self._clock() or circuit.trial_running:
            return CircuitState.OPEN
        return CircuitState.HALF_OPEN

    def failures(self, source: str) -> int:
        circuit = self._circuits.get(source)
        return circuit.failures if circuit is not None else 0
