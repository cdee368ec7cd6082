"""How long to wait before resending, composed from tenacity's strategies in this one place.

Two waits exist: between attempts of one item after a transient failure (5xx, network,
timeout), bounded by ``--max-attempts``; and how long an account stays parked after a 429
that no header explains (a hidden limit), growing by minutes. Both are pure: they take the
attempt number and an injected :class:`random.Random`, so a seeded run is reproducible.

>>> policy = RetryPolicy(max_attempts=3, initial=1.0, maximum=30.0, jitter=0.0)
>>> [policy.delay(n) for n in (1, 2)], policy.exhausted(3)
([1.0, 2.0], True)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import tenacity
from tenacity import stop_after_attempt, wait_exponential
from tenacity.wait import wait_base

__all__ = ["ParkPolicy", "RetryPolicy", "park_policy_for", "wait_seeded_jitter"]


class wait_seeded_jitter(wait_base):
    """Wait a random time in ``[0, jitter]`` drawn from an injected RNG (tenacity's own jitter
    strategies draw from the global ``random`` module, which tests cannot seed safely)."""

    def __init__(self, jitter: float, rng: random.Random) -> None:
        self.jitter = jitter
        self.rng = rng

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        return self.rng.uniform(0.0, self.jitter) if self.jitter > 0 else 0.0


def _state(attempt: int) -> tenacity.RetryCallState:
    """A tenacity call state after ``attempt`` attempts (built as tenacity's own tests do)."""
    state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
    state.attempt_number = attempt
    return state


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Jittered exponential backoff between attempts of one item, bounded by ``max_attempts``."""

    #: attempts per item for transient failures (``--max-attempts``)
    max_attempts: int = 5
    #: the first delay, in seconds; it doubles with each attempt
    initial: float = 1.0
    #: the longest delay before jitter
    maximum: float = 60.0
    #: at most this many seconds of random delay on top
    jitter: float = 1.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")

    def exhausted(self, attempts: int) -> bool:
        """True when ``attempts`` transient failures leave no attempt for this item."""
        return bool(stop_after_attempt(self.max_attempts)(_state(attempts)))

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt before the next one."""
        wait = wait_exponential(multiplier=self.initial, max=self.maximum) + wait_seeded_jitter(
            self.jitter, self.rng
        )
        return float(wait(_state(attempts)))


@dataclass(frozen=True, slots=True)
class ParkPolicy:
    """How long an account is parked after its ``n``-th hidden-limit 429 in a row.

    Defaults: 2, 4, 8, 16, 32, 60, 60 ... minutes, plus up to 10 % jitter so parked accounts
    do not all return in the same second. ``give_up_after`` parks in a row end the account's
    items as ``error`` (None: keep trying for the whole run).
    """

    base: float = 120.0
    maximum: float = 3600.0
    jitter: float = 0.1
    give_up_after: int | None = None
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, parks: int) -> float:
        """Seconds the account stays parked after its ``parks``-th hidden limit in a row."""
        wait = wait_exponential(multiplier=self.base, max=self.maximum)
        base = float(wait(_state(parks)))
        return base + float(wait_seeded_jitter(base * self.jitter, self.rng)(_state(parks)))

    def gives_up(self, parks: int) -> bool:
        """True when ``parks`` hidden limits in a row mean the account is given up for this run."""
        return self.give_up_after is not None and parks >= self.give_up_after


def park_policy_for(window: float | None) -> ParkPolicy:
    """Hidden-limit parks: minutes on the real API, a few windows on a sandbox's short one.

    >>> park_policy_for(None).base, park_policy_for(2.0).base
    (120.0, 4.0)
    """
    if window is not None and window < 60:
        return ParkPolicy(base=max(1.0, 2 * window), maximum=max(10.0, 20 * window))
    return ParkPolicy()
