"""The per-source circuit breaker, driven by a fake clock."""

from __future__ import annotations

from iocscope.engine.circuit import CircuitBreaker, CircuitState


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tripped(clock: FakeClock, threshold: int = 3) -> CircuitBreaker:
    breaker = CircuitBreaker(threshold=threshold, cooldown=60.0, clock=clock)
    for _ in range(threshold):
        breaker.record_failure("api")
    return breaker


def test_closed_below_threshold() -> None:
    breaker = CircuitBreaker(threshold=3, cooldown=60.0, clock=FakeClock())
    breaker.record_failure("api")
    breaker.record_failure("api")
    assert breaker.retry_in("api") is None
    assert breaker.state("api") is CircuitState.CLOSED


def test_opens_at_threshold() -> None:
    clock = FakeClock()
    breaker = tripped(clock)
    assert breaker.retry_in("api") == 60.0
    assert breaker.state("api") is CircuitState.OPEN


def test_half_open_lets_one_trial_through() -> None:
    clock = FakeClock()
    breaker = tripped(clock)
    clock.now += 61
    assert breaker.state("api") is CircuitState.HALF_OPEN
    assert breaker.retry_in("api") is None
    assert breaker.retry_in("api") == 60.0


def test_trial_success_closes() -> None:
    clock = FakeClock()
    breaker = tripped(clock)
    clock.now += 61
    breaker.retry_in("api")
    breaker.record_success("api")
    assert breaker.state("api") is CircuitState.CLOSED
    assert breaker.failures("api") == 0


def test_trial_failure_doubles_cooldown() -> None:
    clock = FakeClock()
    breaker = tripped(clock)
    clock.now += 61
    breaker.retry_in("api")
    breaker.record_failure("api")
    assert breaker.retry_in("api") == 120.0


def test_cooldown_is_capped() -> None:
    clock = FakeClock()
    breaker = tripped(clock)
    for _ in range(12):
        clock.now += 10_000
        breaker.retry_in("api")
        breaker.record_failure("api")
    assert breaker.retry_in("api") == 900.0


def test_sources_are_independent() -> None:
    clock = FakeClock()
    breaker = tripped(clock)
    assert breaker.retry_in("other") is None
