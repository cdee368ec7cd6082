"""What a sandbox emulates: rate-limit presets, the switches for disputed API behaviour, and faults.

Every switch defaults to the behaviour docs/api.md recommends for the real API; the alternatives
exist so a client's tolerance of the other readings can be tested too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from bulkrt.core.tiers import Tier

__all__ = [
    "AlreadyRetweetedMode",
    "BodyCheck",
    "Endpoint",
    "FaultKind",
    "HiddenLimit",
    "NotFoundMode",
    "RateLimitBody",
    "RateLimitHeaders",
    "SandboxConfig",
    "SuccessIdField",
    "Tier",
    "UndoNotFoundMode",
    "FixedWindow",
    "tier_windows",
]


class Endpoint(StrEnum):
    """The API operations the sandbox serves, each with its own per-user window."""

    #: ``POST /2/users/{id}/retweets``
    RETWEET = "retweet"
    #: ``DELETE /2/users/{id}/retweets/{source_tweet_id}``
    UNDO = "undo"
    #: ``GET /2/users/me``
    USERS_ME = "users_me"
    #: ``POST /2/tweets`` (served only so that posting shares the launch preset's 3-hour cap)
    POST_TWEET = "post_tweet"
    #: ``POST /2/oauth2/token`` (no rate limit here; faults only)
    OAUTH2_TOKEN = "oauth2_token"


@dataclass(frozen=True, slots=True)
class FixedWindow:
    """A fixed window: at most ``limit`` requests in ``seconds``, counted from the first request."""

    limit: int
    seconds: float


@dataclass(frozen=True, slots=True)
class HiddenLimit:
    """A limit no response header reveals; hitting it gives a 429 while remaining > 0."""

    limit: int
    seconds: float
    #: the endpoints that share the cap
    endpoints: frozenset[Endpoint]
    #: counted per user; and also for the whole app when ``per_app``
    per_app: bool = False


_MINUTES_15 = 900.0
_DAY = 86_400.0


def tier_windows(tier: Tier) -> dict[Endpoint, FixedWindow]:
    """The per-user window of each endpoint under a preset."""
    per_15_min = {Tier.FREE: 1, Tier.BASIC: 5}.get(tier, 50)
    retweets = FixedWindow(per_15_min, _MINUTES_15)
    if tier is Tier.FREE:
        users_me, post_tweet = FixedWindow(25, _DAY), FixedWindow(17, _DAY)
    elif tier is Tier.BASIC:
        users_me, post_tweet = FixedWindow(100, _DAY), FixedWindow(100, _DAY)
    else:
        users_me, post_tweet = FixedWindow(75, _MINUTES_15), FixedWindow(100, _MINUTES_15)
    return {
        Endpoint.RETWEET: retweets,
        Endpoint.UNDO: retweets,
        Endpoint.USERS_ME: users_me,
        Endpoint.POST_TWEET: post_tweet,
    }


def tier_hidden_caps(tier: Tier) -> tuple[HiddenLimit, ...]:
    """The caps of a preset that no header shows."""
    if tier is Tier.LAUNCH:
        shared = frozenset({Endpoint.RETWEET, Endpoint.POST_TWEET})
        return (HiddenLimit(300, 3 * 3600.0, shared, per_app=True),)
    return ()


class AlreadyRetweetedMode(StrEnum):
    """The answer to retweeting a Tweet the user has already retweeted (docs/api.md §2.2)."""

    #: 400 invalid-request, "You cannot retweet a Tweet that you have already retweeted." (field)
    ERROR = "error"
    #: 200 ``{"data": {"retweeted": true}}`` (X's own playground)
    IDEMPOTENT = "idempotent"


class NotFoundMode(StrEnum):
    """The answer to retweeting a deleted or nonexistent Tweet."""

    #: 200 with only ``errors`` (resource-not-found), no ``data``
    ERRORS_200 = "errors-200"
    #: a 404 resource-not-found problem
    HTTP_404 = "404"


class UndoNotFoundMode(StrEnum):
    """The answer to undoing a retweet of a deleted or nonexistent Tweet."""

    #: 200 ``{"data": {"retweeted": false}}`` ("succeeds with no action")
    NOOP = "noop"
    #: 200 with only ``errors``, as for a retweet
    ERRORS_200 = "errors-200"


class RateLimitBody(StrEnum):
    """The body of a 429."""

    #: ``{"title": "Too Many Requests", "type": "about:blank", "status": 429, ...}``
    PROBLEM = "problem"
    #: ``{"errors": [{"code": 88, "message": "Rate limit exceeded"}]}``
    V1 = "v1"
    #: the ``usage-capped`` problem with ``period`` and ``scope``
    USAGE_CAPPED = "usage-capped"


class RateLimitHeaders(StrEnum):
    """The ``x-rate-limit-*`` headers a 429 carries."""

    #: the true state of the window
    NORMAL = "normal"
    #: remaining > 0 and a reset in the past: the "hidden limit" shape seen in the field
    STALE = "stale"
    #: no rate-limit headers at all
    NONE = "none"
    #: like X's own open-source emulator: ``limit 15 / remaining 14 / reset now+900`` on every
    #: 429 and 5xx whatever the window holds, and no rate-limit headers on other answers
    STATIC = "static"


class BodyCheck(StrEnum):
    """How strictly the retweet body ``{"tweet_id": "..."}`` is checked."""

    #: a string ``tweet_id``, no other key, a JSON Content-Type (the OpenAPI schema)
    STRICT = "strict"
    #: also a numeric ``tweet_id``, extra keys and a missing Content-Type
    LENIENT = "lenient"


class SuccessIdField(StrEnum):
    """Which extra field a successful retweet's ``data`` carries besides ``retweeted``."""

    #: only ``retweeted`` (the docs' quick-start)
    NONE = "none"
    #: ``id``, the source Tweet (OpenAPI up to 2.166)
    ID = "id"
    #: ``rest_id`` (OpenAPI 2.167)
    REST_ID = "rest_id"


class FaultKind(StrEnum):
    """A failure the sandbox can inject, at random or on request."""

    #: 500 with a JSON problem body; the request is counted against the window
    E500 = "500"
    #: 503 with a JSON problem body; counted
    E503 = "503"
    #: 502 with an HTML gateway page and no rate-limit headers; not counted
    E502_HTML = "502-html"
    #: 504 with an empty body and no rate-limit headers; not counted
    E504_EMPTY = "504-empty"
    #: the connection is reset before the request is processed
    RESET = "reset"
    #: the request is processed, then the connection is reset: the client cannot know it happened
    RESET_AFTER = "reset-after"
    #: the request takes effect, but its answer is held back for ``stall_seconds`` (longer than a
    #: client's timeout)
    STALL = "stall"
    #: the request waits ``stall_seconds`` before it is processed, and is dropped unprocessed if
    #: the client has gone by then (a request stuck in front of the API)
    HOLD = "hold"
    #: a 200 that carries both ``data`` and an ``errors`` array
    PARTIAL = "partial"
    #: the generic 403 sent as ``application/json`` instead of ``application/problem+json``
    JSON_403 = "403-json"
    #: a 200 whose 1 MB gzip body inflates to 1 GiB (a decompression bomb); not processed
    GZIP_BOMB = "gzip-bomb"
    #: a 200 with a 64 MiB body, far beyond any answer of the API; not processed
    OVERSIZED = "oversized"


#: the faults ``--fault-rate`` spreads its rate over: all transient, all safe to retry
TRANSIENT_FAULTS: tuple[FaultKind, ...] = (
    FaultKind.E500,
    FaultKind.E502_HTML,
    FaultKind.E503,
    FaultKind.E504_EMPTY,
    FaultKind.RESET,
)


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """Everything that shapes a sandbox's behaviour; the defaults follow docs/api.md."""

    #: users created at start, with deterministic credentials derived from ``seed``
    users: int = 3
    seed: int = 0
    tier: Tier = Tier.PRO
    #: overrides the retweet and undo windows of the preset (for short test windows)
    limit: int | None = None
    window: float | None = None
    #: no rate limits at all (benchmarks); headers still present
    unlimited: bool = False
    #: caps on requests per 24 hours per user / per app, shown in ``x-*-limit-24hour-*`` headers
    user_day_limit: int | None = None
    app_day_limit: int | None = None
    #: extra caps that no header shows, on top of the preset's
    hidden_caps: tuple[HiddenLimit, ...] = ()
    already_retweeted: AlreadyRetweetedMode = AlreadyRetweetedMode.ERROR
    not_found: NotFoundMode = NotFoundMode.ERRORS_200
    undo_not_found: UndoNotFoundMode = UndoNotFoundMode.NOOP
    rate_limit_body: RateLimitBody = RateLimitBody.PROBLEM
    rate_limit_headers: RateLimitHeaders = RateLimitHeaders.NORMAL
    body_check: BodyCheck = BodyCheck.STRICT
    success_id: SuccessIdField = SuccessIdField.NONE
    #: the status for a path ``id`` that is not the authenticated user (400 or 403)
    id_mismatch_status: int = 400
    #: host in problem ``type`` URIs: production uses api.twitter.com; the docs now say api.x.com
    problem_host: str = "api.twitter.com"
    #: OAuth 1.0a timestamps further than this from the sandbox clock are refused
    timestamp_skew: float = 300.0
    #: OAuth 2.0 access-token lifetime (``expires_in``)
    token_ttl: float = 7200.0
    #: authorization codes must be exchanged within this many seconds
    code_ttl: float = 30.0
    #: the token endpoint answers a refresh without a new ``refresh_token`` (RFC 6749 §6 allows
    #: it; the old one then stays valid)
    omit_refresh_token: bool = False
    #: error bodies echo what was sent: the ``Authorization`` header of API requests and the
    #: refresh token of token requests (as some APIs and proxies do), to test redaction
    echo_secrets: bool = False
    #: the OAuth 2.0 client is confidential (Basic auth on the token endpoint) instead of public
    confidential_client: bool = False
    #: the app is enrolled in a plan that includes these endpoints (else 403 client-forbidden)
    enrolled: bool = True
    #: the OAuth 1.0a app has Read+Write permission (else 403 oauth1-permissions)
    oauth1_write: bool = True
    deleted_tweets: frozenset[str] = frozenset()
    protected_tweets: frozenset[str] = frozenset()
    #: random fault rates per kind, each in [0, 1]; decisions are seeded and reproducible
    fault_rates: dict[FaultKind, float] = field(default_factory=dict)
    latency_ms: float = 0.0
    stall_seconds: float = 30.0
    #: how many requests the inspection log keeps
    log_size: int = 100_000

    def __post_init__(self) -> None:
        # Accept the switches' plain string values too (from JSON, the CLI or tests).
        for name, kind in _SWITCHES.items():
            value = getattr(self, name)
            if not isinstance(value, kind):
                object.__setattr__(self, name, kind(value))

    def windows(self) -> dict[Endpoint, FixedWindow]:
        """The per-user window of every endpoint, after ``limit``/``window`` overrides."""
        windows = tier_windows(self.tier)
        if self.limit is not None or self.window is not None:
            for endpoint in (Endpoint.RETWEET, Endpoint.UNDO):
                base = windows[endpoint]
                windows[endpoint] = FixedWindow(
                    self.limit if self.limit is not None else base.limit,
                    self.window if self.window is not None else base.seconds,
                )
        return windows

    def all_hidden_caps(self) -> tuple[HiddenLimit, ...]:
        return tier_hidden_caps(self.tier) + self.hidden_caps

    def validate(self) -> None:
        """Raise ValueError naming the first setting that cannot work."""
        if self.users < 0:
            raise ValueError("users must be >= 0")
        if self.id_mismatch_status not in (400, 403):
            raise ValueError("id_mismatch_status must be 400 or 403")
        rates = self.fault_rates.values()
        if any(rate < 0 or rate > 1 for rate in rates) or sum(rates) > 1 + 1e-9:
            raise ValueError(
                f"fault rates must each be in [0, 1] and add up to at most 1, got {sum(rates):g}"
            )
        for name, value in (
            ("user_day_limit", self.user_day_limit),
            ("app_day_limit", self.app_day_limit),
        ):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1")


#: the enum-valued fields of `SandboxConfig`, coerced from strings
_SWITCHES: dict[str, type[StrEnum]] = {
    "tier": Tier,
    "already_retweeted": AlreadyRetweetedMode,
    "not_found": NotFoundMode,
    "undo_not_found": UndoNotFoundMode,
    "rate_limit_body": RateLimitBody,
    "rate_limit_headers": RateLimitHeaders,
    "body_check": BodyCheck,
    "success_id": SuccessIdField,
}
