"""What a credential refresh's result means: whether to try it again and when, what the item
whose request could not go out becomes, how the account ends when the refresh is refused, and
what the operator must do about it. Pure: the shell reports a `RefreshReport`, this decides.

A refresh ends one of four ways (`RefreshVerdict`): the account has new credentials; the token
endpoint refused the refresh token (only the owner can authorise again); the refresh failed in a
way a later attempt may fix (no answer, a server error); or the account has nothing to refresh
(OAuth 1.0a). A failed refresh is retried per `REFRESH_RETRY`, the one set of numbers for it.

>>> failed = RefreshReport(RefreshVerdict.FAILED, "account a: refreshing failed: HTTP 503")
>>> [refresh_retry_delay(failed, n) for n in (1, 2, 3)]
[1.0, 2.0, None]
>>> refresh_retry_delay(RefreshReport(RefreshVerdict.REFUSED, "refused"), 1) is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bulkrt.core.items import ErrorDetail
from bulkrt.core.outcome import Decision, FailureKind, Outcome
from bulkrt.core.retry_policy import RetryPolicy

__all__ = [
    "CLOCK_SKEW_SUSPECT",
    "REFRESH_RETRY",
    "RefreshEnd",
    "RefreshReport",
    "RefreshVerdict",
    "refresh_end",
    "refresh_retry_delay",
    "refused_advice",
    "unsent_outcome",
]

#: a token refresh that failed (no answer, a server error) is tried 3 times, 1 s then 2 s apart
REFRESH_RETRY = RetryPolicy(max_attempts=3, initial=1.0, maximum=10.0, jitter=0.0)


class RefreshVerdict(StrEnum):
    """How one attempt to refresh an account's credentials ended."""

    #: the account has new credentials
    REFRESHED = "refreshed"
    #: the refresh token was refused (or its rotation lost): the owner must authorise again
    REFUSED = "refused"
    #: no answer, a server error or an answer that is not a token endpoint's; may work later
    FAILED = "failed"
    #: nothing to refresh (OAuth 1.0a credentials)
    UNSUPPORTED = "unsupported"
    #: the credential store (the accounts file) could not be written: the run stops as for a
    #: ledger that cannot be written, and the same command resumes once the cause is fixed
    STORE_FAILED = "store-failed"


@dataclass(frozen=True, slots=True)
class RefreshReport:
    """The result of one refresh attempt, as the shell's sender reports it."""

    verdict: RefreshVerdict
    #: the operator's line for a refused or failed refresh (never a token)
    message: str = ""
    #: what the token endpoint answered, in a few words
    detail: str = ""
    #: the token endpoint's HTTP status; None without an answer
    http: int | None = None
    #: the answer cannot be a token endpoint's (an HTML page, a 4xx without an OAuth error)
    not_api: bool = False
    #: the file the credential store could not write (`RefreshVerdict.STORE_FAILED`)
    store: str | None = None


@dataclass(frozen=True, slots=True)
class RefreshEnd:
    """How an account's refresh ends: refreshed, or paused with ``error`` and ``advice``."""

    ok: bool
    #: the error every paused item carries
    error: ErrorDetail | None = None
    #: the "needs attention" line; None when the run stopped for a wrong API base instead
    advice: str | None = None


def refresh_retry_delay(
    report: RefreshReport, attempts: int, policy: RetryPolicy = REFRESH_RETRY
) -> float | None:
    """Seconds before trying the refresh again after ``attempts`` attempts, or None to stop."""
    if report.verdict is not RefreshVerdict.FAILED or policy.exhausted(attempts):
        return None
    return policy.delay(attempts)


def refresh_end(
    account: str,
    report: RefreshReport,
    *,
    misconfigured: bool = False,
    clock_skew: float | None = None,
) -> RefreshEnd:
    """The end of an account's refresh, given its last attempt (``misconfigured``: the failures
    proved the API base wrong, so the base, not the account, needs attention; ``clock_skew``: how
    far the refused answer's ``Date`` was from this machine's clock, when it had one).

    >>> refresh_end("a", RefreshReport(RefreshVerdict.REFRESHED)).ok
    True
    >>> end = refresh_end("a", RefreshReport(RefreshVerdict.UNSUPPORTED))
    >>> end.error.detail, end.advice.split(":")[0]
    ('OAuth 1.0a credentials refused; nothing to refresh', 'account a')
    """
    if report.verdict is RefreshVerdict.REFRESHED:
        return RefreshEnd(ok=True)
    if report.verdict is RefreshVerdict.UNSUPPORTED:
        cause = "OAuth 1.0a credentials refused; nothing to refresh"
        advice: str | None = refused_advice(
            account, "unauthorized", oauth1=True, clock_skew=clock_skew
        )
    else:
        cause = "OAuth 2.0 token refresh failed"
        advice = None if misconfigured else report.message
    return RefreshEnd(
        ok=False, error=ErrorDetail("unauthorized", "Unauthorized", cause), advice=advice
    )


def unsent_outcome(report: RefreshReport) -> Outcome:
    """The outcome of a request that never went out because the account's credentials could
    not be refreshed first: refused, the account's refresh logic takes over (AUTH_FAILED);
    failed (or the store could not be written: the run stops and the item stays unfinished), the
    item is retried like any transient failure.

    >>> unsent_outcome(RefreshReport(RefreshVerdict.FAILED, "m")).decision
    <Decision.RETRY: 'retry'>
    """
    if report.verdict in (RefreshVerdict.FAILED, RefreshVerdict.STORE_FAILED):
        error = ErrorDetail(FailureKind.NETWORK, "Refresh failed", report.message)
        return Outcome(Decision.RETRY, error=error, unsent=True)
    error = ErrorDetail("reauthorization-needed", "Unauthorized", report.message)
    return Outcome(Decision.AUTH_FAILED, error=error, unsent=True)


#: what the operator must do, per kind of 403 that refuses an account's credentials
_ADVICE = {
    "unsupported-authentication": "the API refused the kind of token used (an app-only token "
    "where a user token is needed): put the account's OAuth 1.0a user credentials or OAuth 2.0 "
    "user tokens in the accounts file",
    "oauth1-permissions": "the app's OAuth 1.0a permissions do not allow retweeting: set the "
    "app to Read and Write in the developer portal, then have the account authorise it again "
    "(its access token keeps the permissions it was issued with)",
    "client-forbidden": "the app is not enrolled in a plan that includes these endpoints: "
    "attach it to a project with access to them in the developer portal",
}


#: a refused OAuth 1.0a request whose answer's ``Date`` is this far (seconds) from this machine's
#: clock was most likely refused for its timestamp (the API allows a few minutes)
CLOCK_SKEW_SUSPECT = 120.0


def refused_advice(
    account: str, kind: str, oauth1: bool, *, clock_skew: float | None = None
) -> str:
    """The "needs attention" line for an account whose credentials a 401 or 403 refused;
    ``clock_skew`` is how far ahead of this machine's clock the API's was (its ``Date``).

    >>> "1000 s ahead of" in refused_advice("a", "unauthorized", True, clock_skew=1e3)
    True
    """
    if kind in _ADVICE:
        return f"account {account}: {_ADVICE[kind]}"
    if kind != "unauthorized":  # a 403 naming missing OAuth 2.0 scopes
        return (
            f"account {account}: its OAuth 2.0 token lacks the scopes retweeting needs "
            f"(tweet.read, tweet.write, users.read, and offline.access to refresh): authorise "
            f"the app again for this account with those scopes"
        )
    if oauth1 and clock_skew is not None and abs(clock_skew) >= CLOCK_SKEW_SUSPECT:
        side = "ahead of" if clock_skew > 0 else "behind"
        return (
            f"account {account}: the API refused its OAuth 1.0a credentials (401), and the "
            f"API's clock (its answer's Date) is {abs(clock_skew):.0f} s {side} this machine's: "
            f"an OAuth 1.0a signature carries the time, and one a few minutes off is refused; "
            f"set the system clock right (NTP), then run again. If the clock is right, check "
            f"the consumer key and secret and the access token and secret in the accounts file"
        )
    if oauth1:
        return (
            f"account {account}: the API refused its OAuth 1.0a credentials (401); check the "
            f"consumer key and secret and the access token and secret in the accounts file, "
            f"or authorise the app again for this account. Another cause: this machine's clock "
            f"is wrong (an OAuth 1.0a signature carries the time, and one a few minutes off is "
            f"refused): when every OAuth 1.0a account is refused at once, check the system "
            f"clock first"
        )
    return (
        f"account {account}: the API refused its OAuth 2.0 access token right after a refresh "
        f"(401); authorise the app again for this account"
    )
