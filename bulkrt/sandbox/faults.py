"""Which requests fail, and how: seeded random faults that are reproducible per request, plus
faults scripted for the next matching requests.

A random decision depends only on the seed, the request (method, path, body) and how many times
that same request was seen before, never on the order in which concurrent clients arrive. So a
job's third attempt at retweeting Tweet T as user U meets the same fault in every run.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

from bulkrt.sandbox.config import Endpoint, FaultKind

__all__ = ["FaultPlan", "ScriptedFault"]


@dataclass(slots=True)
class ScriptedFault:
    """Fail the next ``count`` requests that match (None matches anything)."""

    kind: FaultKind
    count: int = 1
    user_id: str | None = None
    endpoint: Endpoint | None = None

    def matches(self, user_id: str | None, endpoint: Endpoint) -> bool:
        return (self.user_id is None or self.user_id == user_id) and (
            self.endpoint is None or self.endpoint is endpoint
        )


class FaultPlan:
    """Decides the fault, if any, for each request.

    >>> plan = FaultPlan({FaultKind.E503: 1.0}, seed=7)
    >>> plan.decide(b"POST /2/users/1/retweets {}", None, Endpoint.RETWEET)
    <FaultKind.E503: '503'>
    """

    def __init__(self, rates: dict[FaultKind, float], seed: int) -> None:
        self._seed = seed.to_bytes(8, "big", signed=True)
        #: (upper bound of the kind's slice of [0, 1), kind)
        self._slices: list[tuple[float, FaultKind]] = []
        bound = 0.0
        for kind, rate in rates.items():
            if rate > 0:
                bound += rate
                self._slices.append((bound, kind))
        self._seen: Counter[bytes] = Counter()
        self.scripted: list[ScriptedFault] = []

    def script(self, fault: ScriptedFault) -> None:
        self.scripted.append(fault)

    def decide(self, identity: bytes, user_id: str | None, endpoint: Endpoint) -> FaultKind | None:
        """The fault for one request; ``identity`` is its method, path and body."""
        for fault in self.scripted:
            if fault.count > 0 and fault.matches(user_id, endpoint):
                fault.count -= 1
                if fault.count == 0:
                    self.scripted.remove(fault)
                return fault.kind
        if not self._slices:
            return None
        digest = hashlib.blake2b(identity, digest_size=8, key=self._seed).digest()
        occurrence = self._seen[digest]
        self._seen[digest] = occurrence + 1
        draw = hashlib.blake2b(occurrence.to_bytes(4, "big"), digest_size=8, key=digest).digest()
        point = int.from_bytes(draw, "big") / 2**64
        for bound, kind in self._slices:
            if point < bound:
                return kind
        return None
