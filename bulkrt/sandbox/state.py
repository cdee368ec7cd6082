"""The sandbox's world in memory, and what each API request does to it.

`SandboxState.handle` is the whole API behind the HTTP layer: authenticate, check permissions,
count against the rate limits, validate, act. It takes ``now`` and never waits or touches a socket;
`bulkrt.sandbox.app` only translates HTTP to `ApiCall` and `Reply` back.
"""

from __future__ import annotations

import json
import re
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bulkrt.sandbox.auth import Authenticator, Principal
from bulkrt.sandbox.config import (
    AlreadyRetweetedMode,
    BodyCheck,
    Endpoint,
    FaultKind,
    NotFoundMode,
    RateLimitHeaders,
    SandboxConfig,
    SuccessIdField,
    UndoNotFoundMode,
)
from bulkrt.sandbox.faults import FaultPlan
from bulkrt.sandbox.limits import RateLimits
from bulkrt.sandbox.problems import Problems, Reply
from bulkrt.sandbox.world import build_world

__all__ = ["ApiCall", "SandboxState"]

ID_PATTERN = re.compile(r"[0-9]{1,19}")
PROTECTED_DETAIL = "Retweet is not permissible for this status."
BLOCKED_DETAIL = "You have been blocked from retweeting this user's tweets at their request."


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One API request as the sandbox received it."""

    method: str
    #: scheme://host/path?query as the client called it (what OAuth 1.0a signs)
    url: str
    endpoint: Endpoint
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    path_user_id: str | None = None
    source_tweet_id: str | None = None


class SandboxState:
    """Users, their retweets, the Tweets' states, credentials, windows, faults and statistics.

    >>> from bulkrt.sandbox.config import SandboxConfig
    >>> state = SandboxState(SandboxConfig(users=2), now=1_800_000_000)
    >>> [u.name for u in state.world.users]
    ['acct001', 'acct002']
    """

    def __init__(self, config: SandboxConfig, now: float) -> None:
        config.validate()
        self.config = config
        self.problems = Problems(config.problem_host)
        self.world = build_world(
            config.users, config.seed, confidential_client=config.confidential_client
        )
        self.users = {u.user_id: u for u in self.world.users}
        self.auth = Authenticator(config, self.world, self.problems, now)
        self.limits = RateLimits(config, self.problems, app_id=self.world.app.app_id)
        self.faults = FaultPlan(config.fault_rates, config.seed)
        self.retweets: dict[str, set[str]] = {u.user_id: set() for u in self.world.users}
        self.deleted = set(config.deleted_tweets)
        self.protected = set(config.protected_tweets)
        #: (user, tweet) pairs whose author blocked the user
        self.blocked: set[tuple[str, str]] = set()
        self.requests = 0
        self.by_status: Counter[str] = Counter()
        self.by_user: Counter[str] = Counter()
        self.by_fault: Counter[str] = Counter()
        self.log: deque[dict[str, Any]] = deque(maxlen=config.log_size)
        self._next_tweet_id = 1_900_000_000_000_000_000

    # -- the API ---------------------------------------------------------------------------
    def handle(self, call: ApiCall, now: float, fault: FaultKind | None = None) -> Reply:
        """Answer one API request; ``fault`` is an injected failure that replaces the answer."""
        who = self.auth.authenticate(call.method, call.url, call.headers, call.body, now)
        if isinstance(who, Reply):
            who.headers.update(self.limits.peek("anonymous", call.endpoint, now))
            return who
        refused = self.auth.permit(who, call.endpoint)
        if refused is not None:
            refused.headers.update(self.limits.peek(who.user_id, call.endpoint, now))
            return refused
        admission = self.limits.admit(who.user_id, call.endpoint, now)
        reply = admission.refused or self._injected(fault) or self._serve(who, call, now)
        reply.headers.update(admission.headers)
        if self.config.rate_limit_headers is RateLimitHeaders.STATIC:
            _static_headers(reply, now)
        return reply

    def _injected(self, fault: FaultKind | None) -> Reply | None:
        """The answer of a fault that replaces the API's answer (the request was still counted)."""
        if fault in (FaultKind.E500, FaultKind.E503):
            return self.problems.server_error(int(fault))
        if fault is FaultKind.JSON_403:
            reply = self.problems.forbidden()
            return Reply(403, reply.body, "application/json; charset=utf-8", pretty=False)
        return None

    def _serve(self, who: Principal, call: ApiCall, now: float) -> Reply:
        if call.endpoint is Endpoint.USERS_ME:
            user = self.users[who.user_id]
            return Reply(
                200, {"data": {"id": user.user_id, "name": user.name, "username": user.username}}
            )
        if call.endpoint is Endpoint.POST_TWEET:
            return self._post_tweet(call)
        refused = self._check_path_user(who, call.path_user_id or "")
        if refused is not None:
            return refused
        if call.endpoint is Endpoint.RETWEET:
            tweet_id = self._retweet_body(call)
            return tweet_id if isinstance(tweet_id, Reply) else self._retweet(who.user_id, tweet_id)
        tweet_id = call.source_tweet_id or ""
        if not ID_PATTERN.fullmatch(tweet_id):
            return self.problems.invalid_request(
                f"The `source_tweet_id` query parameter value [{tweet_id}] is not valid",
                {"source_tweet_id": [tweet_id]},
            )
        return self._undo(who.user_id, tweet_id)

    def _check_path_user(self, who: Principal, path_id: str) -> Reply | None:
        if not ID_PATTERN.fullmatch(path_id):
            return self.problems.invalid_request(
                f"The `id` query parameter value [{path_id}] is not valid", {"id": [path_id]}
            )
        if path_id != who.user_id:
            reply = self.problems.invalid_request(
                f"The `id` query parameter value [{path_id}] must be the same as the "
                f"authenticating user [{who.user_id}]",
                {"id": [path_id]},
            )
            if self.config.id_mismatch_status != 400:
                assert reply.body is not None
                return self.problems.forbidden(reply.body["errors"][0]["message"])
            return reply
        return None

    def _retweet_body(self, call: ApiCall) -> str | Reply:
        """The ``tweet_id`` of a retweet request, or the 400 for a body the API refuses."""
        strict = self.config.body_check is BodyCheck.STRICT
        content_type = call.headers.get("Content-Type", "")
        if strict and content_type.split(";")[0].strip().lower() != "application/json":
            return self.problems.invalid_request("Content-Type must be application/json")
        if not call.body.strip():
            return self.problems.invalid_request("request body is required")
        try:
            body = json.loads(call.body)
        except (ValueError, UnicodeDecodeError) as exc:
            return self.problems.invalid_request(f"invalid JSON: {exc}")
        if not isinstance(body, dict):
            return self.problems.invalid_request("invalid JSON: the body must be an object")
        if "tweet_id" not in body:
            return self.problems.invalid_request("tweet_id field is required")
        if strict and set(body) != {"tweet_id"}:
            extra = sorted(set(body) - {"tweet_id"})
            return self.problems.invalid_request(f"The request body has unknown fields: {extra}")
        raw = body["tweet_id"]
        accepted = isinstance(raw, str) or (not strict and isinstance(raw, int) and raw >= 0)
        tweet_id = str(raw)
        if isinstance(raw, bool) or not accepted or not ID_PATTERN.fullmatch(tweet_id):
            return self.problems.invalid_request(
                f"The `tweet_id` parameter value [{tweet_id}] is not valid",
                {"tweet_id": [tweet_id]},
            )
        return tweet_id

    def _retweet(self, user_id: str, tweet_id: str) -> Reply:
        if tweet_id in self.deleted:
            if self.config.not_found is NotFoundMode.HTTP_404:
                return self.problems.not_found_404(tweet_id)
            return self.problems.not_found_200(tweet_id)
        if tweet_id in self.protected:
            return self.problems.forbidden(PROTECTED_DETAIL)
        if (user_id, tweet_id) in self.blocked:
            return self.problems.forbidden(BLOCKED_DETAIL)
        retweets = self.retweets[user_id]
        if tweet_id in retweets and self.config.already_retweeted is AlreadyRetweetedMode.ERROR:
            return self.problems.already_retweeted()
        retweets.add(tweet_id)
        data: dict[str, Any] = {"retweeted": True}
        if self.config.success_id is SuccessIdField.ID:
            data = {"id": tweet_id, "retweeted": True}
        elif self.config.success_id is SuccessIdField.REST_ID:
            data = {"rest_id": tweet_id, "retweeted": True}
        return Reply(200, {"data": data})

    def _undo(self, user_id: str, tweet_id: str) -> Reply:
        if tweet_id in self.deleted and self.config.undo_not_found is UndoNotFoundMode.ERRORS_200:
            return self.problems.not_found_200(tweet_id)
        self.retweets[user_id].discard(tweet_id)
        return Reply(200, {"data": {"retweeted": False}})

    def _post_tweet(self, call: ApiCall) -> Reply:
        try:
            body = json.loads(call.body)
        except (ValueError, UnicodeDecodeError) as exc:
            return self.problems.invalid_request(f"invalid JSON: {exc}")
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return self.problems.invalid_request("text field is required")
        self._next_tweet_id += 1
        tweet_id = str(self._next_tweet_id)
        return Reply(
            201,
            {"data": {"id": tweet_id, "text": body["text"], "edit_history_tweet_ids": [tweet_id]}},
        )

    # -- the world, as tests and operators shape it ----------------------------------------
    def delete_tweet(self, tweet_id: str) -> None:
        """A deleted Tweet can no longer be retweeted, and its retweets disappear."""
        self.deleted.add(tweet_id)
        self.protected.discard(tweet_id)
        for retweets in self.retweets.values():
            retweets.discard(tweet_id)

    def set_tweet_state(self, tweet_id: str, state: str) -> None:
        if state == "deleted":
            self.delete_tweet(tweet_id)
            return
        self.deleted.discard(tweet_id)
        self.protected.discard(tweet_id)
        if state == "protected":
            self.protected.add(tweet_id)
        elif state != "public":
            raise ValueError(f"unknown Tweet state {state!r}: use public, protected or deleted")

    def record(
        self,
        method: str,
        path: str,
        user_id: str | None,
        status: str,
        fault: FaultKind | None,
        now: float,
    ) -> None:
        """Count one request in the statistics and the inspection log."""
        self.requests += 1
        self.by_status[status] += 1
        if user_id is not None:
            self.by_user[user_id] += 1
        if fault is not None:
            self.by_fault[fault.value] += 1
        self.log.append(
            {
                "ts": now,
                "method": method,
                "path": path,
                "user_id": user_id,
                "status": status,
                "fault": fault.value if fault else None,
            }
        )

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_status": dict(sorted(self.by_status.items())),
            "by_user": dict(sorted(self.by_user.items())),
            "by_fault": dict(sorted(self.by_fault.items())),
            "refreshes": self.auth.tokens.refreshes,
        }


def _static_headers(reply: Reply, now: float) -> None:
    """`RateLimitHeaders.STATIC`: the emulator's fixed headers on a 429 or 5xx, none elsewhere."""
    for name in [n for n in reply.headers if n.lower().startswith("x-rate-limit-")]:
        del reply.headers[name]
    if reply.status == 429 or reply.status >= 500:
        reply.headers.update(
            {
                "x-rate-limit-limit": "15",
                "x-rate-limit-remaining": "14",
                "x-rate-limit-reset": str(int(now) + 900),
            }
        )
