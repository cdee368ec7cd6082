"""Why an account of the multi-machine mode waits, for ``bulkrt status --redis``.

A worker tells, in its heartbeat, why each account it holds waits (`why_waiting`, from its
scheduler's view of the account and what the shared budget last refused it); the status
command adds what only Redis knows: accounts no worker holds yet, accounts in the quiet period
after their worker died, and accounts whose lease a dead worker still holds until it expires.

>>> from bulkrt.core.scheduler import AccountState
>>> why_waiting(AccountState.WAITING, 130.0, None, None, 100.0, window_at=130.0)
(<WaitReason.WINDOW_FULL: 'window_full'>, 130.0)
>>> why_waiting(AccountState.WAITING, 101.0, None, None, 100.0, window_at=None)
(<WaitReason.RETRY: 'retry_backoff'>, 101.0)
>>> why_waiting(AccountState.READY, None, None, None, 100.0, window_at=None) is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bulkrt.core.scheduler import AccountEvent, AccountState, EventKind

__all__ = ["AccountWait", "Hold", "WaitReason", "why_waiting"]


class WaitReason(StrEnum):
    """Why an account sends nothing now (the keys of ``bulkrt status --redis --json``)."""

    #: its rate-limit window is full (this worker's own pacing, or the shared log)
    WINDOW_FULL = "window_full"
    #: an answer (a 429, or ``x-rate-limit-remaining: 0``) taught the window's reset
    RATE_LIMITED = "rate_limited"
    #: a cap no header shows: a 429 the headers do not explain parked it, or the cap's log is full
    HIDDEN_CAP = "hidden_cap"
    #: waiting to retry after a transient failure (5xx, network, timeout)
    RETRY = "retry_backoff"
    #: its OAuth 2.0 credentials are being refreshed
    REFRESHING = "refreshing_credentials"
    #: its credentials were refused: its items end in error until it is authorised again
    CREDENTIALS_REFUSED = "credentials_refused"
    #: its worker died: what that worker had in flight lands before anyone sends again
    QUIET = "quiet_after_dead_worker"
    #: a worker that stopped beating still holds its lease, until the lease expires
    DEAD_HOLDER = "lease_held_by_dead_worker"
    #: items queued, no worker has claimed it yet
    NO_WORKER = "waiting_for_a_worker"

    @property
    def explained(self) -> str:
        """The reason in a few words, for a terminal."""
        return _EXPLAINED[self]


_EXPLAINED = {
    WaitReason.WINDOW_FULL: "rate-limit window full, waiting for it to open",
    WaitReason.RATE_LIMITED: "held until the reset a 429 (or a spent window) taught",
    WaitReason.HIDDEN_CAP: "held by a cap no header shows",
    WaitReason.RETRY: "retrying after a transient failure",
    WaitReason.REFRESHING: "refreshing its OAuth 2.0 credentials",
    WaitReason.CREDENTIALS_REFUSED: "credentials refused: authorise the account again",
    WaitReason.QUIET: "quiet period after its worker died (its requests in flight land first)",
    WaitReason.DEAD_HOLDER: "lease held by a worker that stopped beating, until it expires",
    WaitReason.NO_WORKER: "waiting for a worker to claim it",
}


@dataclass(frozen=True, slots=True)
class Hold:
    """What the shared budget (or the lease's quiet period) last refused an account: why, and
    until when (epoch seconds)."""

    reason: WaitReason
    until: float


@dataclass(frozen=True, slots=True)
class AccountWait:
    """One waiting account as ``bulkrt status --redis`` shows it; ``until`` None when no time
    is known (credentials refused, a refresh under way, a lease whose worker died)."""

    account: str
    user_id: str
    reason: WaitReason
    until: float | None
    worker: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "account": self.account,
            "user_id": self.user_id,
            "why": self.reason.value,
            "until": self.until,
            "worker": self.worker,
        }


def why_waiting(
    state: AccountState,
    resumes_at: float | None,
    event: AccountEvent | None,
    hold: Hold | None,
    now: float,
    *,
    window_at: float | None,
) -> tuple[WaitReason, float | None] | None:
    """Why an account in ``state`` at ``now`` waits, and until when; None when it does not wait
    (ready, sending, or finished). ``resumes_at`` is when its scheduler lets it send next,
    ``event`` its latest state change, ``hold`` what the shared budget last refused it, and
    ``window_at`` when its own rate-limit model lets its next request go."""
    if state is AccountState.PAUSED:
        gave_up = event is not None and event.kind is EventKind.GAVE_UP
        return (WaitReason.HIDDEN_CAP if gave_up else WaitReason.CREDENTIALS_REFUSED), None
    if state is AccountState.REFRESHING:
        return WaitReason.REFRESHING, None
    if state is AccountState.PARKED:
        return WaitReason.HIDDEN_CAP, resumes_at
    if hold is not None and hold.until > now:
        return hold.reason, hold.until
    if state is not AccountState.WAITING or resumes_at is None or resumes_at <= now:
        return None
    if window_at is None or window_at < resumes_at:
        return WaitReason.RETRY, resumes_at
    if event is not None and event.kind is EventKind.RATE_LIMITED and (event.until or 0) > now:
        return WaitReason.RATE_LIMITED, resumes_at
    return WaitReason.WINDOW_FULL, resumes_at
