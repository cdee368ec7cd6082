"""The sandbox's rate limits: each user's per-endpoint window, optional 24-hour caps, and caps that
no header reveals; and the ``x-rate-limit-*`` headers that every response carries."""

from __future__ import annotations

from dataclasses import dataclass

from bulkrt.sandbox.config import (
    Endpoint,
    FixedWindow,
    RateLimitBody,
    RateLimitHeaders,
    SandboxConfig,
)
from bulkrt.sandbox.problems import Problems, Reply
from bulkrt.sandbox.windows import WindowCounter, WindowView

__all__ = ["Admission", "RateLimits"]

_DAY = 86_400.0
#: what an unlimited sandbox reports as the window size
_UNLIMITED = 1_000_000_000
#: the endpoints that 24-hour caps count (writes)
_WRITES = frozenset({Endpoint.RETWEET, Endpoint.UNDO, Endpoint.POST_TWEET})


@dataclass(frozen=True, slots=True)
class Admission:
    """The verdict on one request: the headers to send, and a 429 when it is refused."""

    headers: dict[str, str]
    refused: Reply | None = None


def _headers(prefix: str, view: WindowView) -> dict[str, str]:
    return {
        f"{prefix}-limit": str(view.limit),
        f"{prefix}-remaining": str(view.remaining),
        f"{prefix}-reset": str(view.reset),
    }


class RateLimits:
    """Counts requests and decides 429s for one sandbox.

    >>> limits = RateLimits(SandboxConfig(limit=1, window=60), Problems(), app_id="1")
    >>> limits.admit("7", Endpoint.RETWEET, now=0).headers["x-rate-limit-remaining"]
    '0'
    >>> limits.admit("7", Endpoint.RETWEET, now=1).refused.status
    429
    """

    def __init__(self, config: SandboxConfig, problems: Problems, *, app_id: str) -> None:
        self._config = config
        self._problems = problems
        self._windows = config.windows()
        self._hidden = config.all_hidden_caps()
        self._app_id = app_id
        self._counter = WindowCounter()

    # -- views -----------------------------------------------------------------------------
    def _main_view(self, who: str, endpoint: Endpoint, now: float, *, take: bool) -> WindowView:
        window = self._windows[endpoint]
        if self._config.unlimited:
            return WindowView(_UNLIMITED, _UNLIMITED, int(now + window.seconds))
        count = self._counter.take if take else self._counter.view
        return count((who, endpoint), window, now)

    def _day_views(
        self, user_id: str, endpoint: Endpoint, now: float, *, take: bool
    ) -> list[tuple[str, WindowView]]:
        if endpoint not in _WRITES:
            return []
        count = self._counter.take if take else self._counter.view
        views = []
        if self._config.user_day_limit is not None:
            window = FixedWindow(self._config.user_day_limit, _DAY)
            views.append(("x-user-limit-24hour", count((user_id, "day"), window, now)))
        if self._config.app_day_limit is not None:
            window = FixedWindow(self._config.app_day_limit, _DAY)
            views.append(("x-app-limit-24hour", count((self._app_id, "app-day"), window, now)))
        return views

    def _hidden_views(
        self, user_id: str, endpoint: Endpoint, now: float, *, take: bool
    ) -> list[WindowView]:
        count = self._counter.take if take else self._counter.view
        views = []
        for index, cap in enumerate(self._hidden):
            if endpoint in cap.endpoints:
                window = FixedWindow(cap.limit, cap.seconds)
                views.append(count((user_id, "hidden", index), window, now))
                if cap.per_app:
                    views.append(count((self._app_id, "hidden-app", index), window, now))
        return views

    # -- decisions -------------------------------------------------------------------------
    def peek(self, who: str, endpoint: Endpoint, now: float) -> dict[str, str]:
        """Headers for a request that is not counted (refused before it reached the endpoint)."""
        return _headers("x-rate-limit", self._main_view(who, endpoint, now, take=False))

    def admit(self, user_id: str, endpoint: Endpoint, now: float) -> Admission:
        """Count the request if every window has room; otherwise refuse it with a 429."""
        main = self._main_view(user_id, endpoint, now, take=False)
        days = self._day_views(user_id, endpoint, now, take=False)
        headers = _headers("x-rate-limit", main)
        for prefix, view in days:
            headers.update(_headers(prefix, view))
        hidden = self._hidden_views(user_id, endpoint, now, take=False)
        if main.exhausted or any(v.exhausted for _, v in days) or any(v.exhausted for v in hidden):
            return Admission(self._refusal_headers(headers, main, now), self._too_many())
        headers = _headers("x-rate-limit", self._main_view(user_id, endpoint, now, take=True))
        for prefix, view in self._day_views(user_id, endpoint, now, take=True):
            headers.update(_headers(prefix, view))
        self._hidden_views(user_id, endpoint, now, take=True)
        return Admission(headers)

    def _refusal_headers(
        self, headers: dict[str, str], main: WindowView, now: float
    ) -> dict[str, str]:
        mode = self._config.rate_limit_headers
        if mode is RateLimitHeaders.NONE:
            return {}
        if mode is RateLimitHeaders.STALE:
            headers["x-rate-limit-remaining"] = str(max(1, main.remaining))
            headers["x-rate-limit-reset"] = str(int(now) - 1)
        return headers

    def _too_many(self) -> Reply:
        body = self._config.rate_limit_body
        if body is RateLimitBody.V1:
            return self._problems.too_many_requests_v1()
        if body is RateLimitBody.USAGE_CAPPED:
            return self._problems.usage_capped()
        return self._problems.too_many_requests()
