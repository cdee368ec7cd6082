"""The sandbox's own endpoints under ``/__sandbox/``, outside the API's namespace: read the state
(retweets, statistics, the request log) and shape the world (pre-existing retweets, deleted and
protected Tweets, blocks, faults, tokens, the clock) for tests and operators."""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bulkrt.sandbox.clock import Clock
from bulkrt.sandbox.config import Endpoint, FaultKind
from bulkrt.sandbox.faults import ScriptedFault
from bulkrt.sandbox.oauth2 import DEFAULT_SCOPES
from bulkrt.sandbox.state import ID_PATTERN, SandboxState

__all__ = ["add_inspection_routes"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except json.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"invalid JSON: {exc}"})) from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text=json.dumps({"error": "the body must be a JSON object"}))
    return body


class _Inspection:
    """The handlers, over one sandbox's state and clock."""

    def __init__(self, state: SandboxState, clock: Clock) -> None:
        self.state = state
        self.clock = clock

    def user_or_404(self, request: web.Request) -> str:
        user_id = request.match_info["user_id"]
        if user_id not in self.state.retweets:
            raise web.HTTPNotFound(text=json.dumps({"error": f"no sandbox user {user_id}"}))
        return user_id

    async def get_retweets(self, request: web.Request) -> web.Response:
        retweets = self.state.retweets[self.user_or_404(request)]
        return web.json_response({"tweet_ids": sorted(retweets, key=lambda t: (len(t), t))})

    async def put_retweets(self, request: web.Request) -> web.Response:
        """Replace a user's retweets, e.g. to give an account pre-existing retweets."""
        user_id = self.user_or_404(request)
        tweet_ids = (await _json(request)).get("tweet_ids")
        if not isinstance(tweet_ids, list) or not all(
            isinstance(t, str) and ID_PATTERN.fullmatch(t) for t in tweet_ids
        ):
            return _bad("tweet_ids must be a list of Tweet ID strings")
        self.state.retweets[user_id] = set(tweet_ids)
        return web.json_response({"tweet_ids": sorted(tweet_ids, key=lambda t: (len(t), t))})

    async def get_users(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "users": [
                    {"name": u.name, "user_id": u.user_id, "username": u.username, "auth": u.auth}
                    for u in self.state.world.users
                ]
            }
        )

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.stats())

    async def get_log(self, request: web.Request) -> web.Response:
        """Requests from number ``since`` on (numbers count every request ever logged; the log
        keeps only the latest ``log_size``, and ``first`` says which is the oldest kept)."""
        log = self.state.log
        first = self.state.requests - len(log)
        start = max(int(request.query.get("since", "0")), first)
        entries = list(itertools.islice(log, start - first, None))
        return web.json_response({"entries": entries, "next": start + len(entries), "first": first})

    async def put_tweet(self, request: web.Request) -> web.Response:
        tweet_id = request.match_info["tweet_id"]
        try:
            self.state.set_tweet_state(tweet_id, str((await _json(request)).get("state")))
        except ValueError as exc:
            return _bad(str(exc))
        return web.json_response({"tweet_id": tweet_id})

    async def post_block(self, request: web.Request) -> web.Response:
        body = await _json(request)
        self.state.blocked.add((str(body.get("user_id")), str(body.get("tweet_id"))))
        return web.json_response({"blocked": len(self.state.blocked)})

    async def post_fault(self, request: web.Request) -> web.Response:
        """Script a fault for the next ``count`` matching requests."""
        body = await _json(request)
        try:
            fault = ScriptedFault(
                kind=FaultKind(str(body.get("kind"))),
                count=int(body.get("count", 1)),
                user_id=body.get("user_id"),
                endpoint=Endpoint(body["endpoint"]) if body.get("endpoint") else None,
            )
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        self.state.faults.script(fault)
        return web.json_response({"scripted": len(self.state.faults.scripted)})

    async def post_token(self, request: web.Request) -> web.Response:
        """Mint an OAuth 2.0 user token with chosen scopes and lifetime."""
        body = await _json(request)
        user_id = str(body.get("user_id"))
        if user_id not in self.state.users:
            return _bad(f"no sandbox user {user_id}")
        scopes = frozenset(body.get("scopes", DEFAULT_SCOPES))
        ttl = body.get("expires_in")
        now = self.clock.now()
        access, refresh = self.state.auth.tokens.issue(
            user_id, scopes, now, ttl=float(ttl) if ttl is not None else None
        )
        grant = self.state.auth.tokens.lookup(access, now)
        expires_at = grant.expires_at if grant else now
        return web.json_response(
            {"access_token": access, "refresh_token": refresh, "expires_at": expires_at}
        )

    async def get_issued(self, request: web.Request) -> web.Response:
        """Every OAuth 2.0 access and refresh token the sandbox ever issued (secrets audits)."""
        return web.json_response({"tokens": self.state.auth.tokens.issued})

    async def patch_app(self, request: web.Request) -> web.Response:
        body = await _json(request)
        if "enrolled" in body:
            self.state.auth.enrolled = bool(body["enrolled"])
        if "oauth1_write" in body:
            self.state.auth.oauth1_write = bool(body["oauth1_write"])
        return web.json_response(
            {"enrolled": self.state.auth.enrolled, "oauth1_write": self.state.auth.oauth1_write}
        )

    async def get_clock(self, request: web.Request) -> web.Response:
        return web.json_response({"now": self.clock.now()})

    async def post_clock(self, request: web.Request) -> web.Response:
        """Jump the sandbox clock ahead (windows, token expiry and nonces follow)."""
        advance = getattr(self.clock, "advance", None)
        if advance is None:
            return _bad("this sandbox runs on the wall clock; start it with a movable clock")
        try:
            advance(float((await _json(request)).get("advance", 0)))
        except (TypeError, ValueError) as exc:
            return _bad(str(exc))
        return web.json_response({"now": self.clock.now()})


def add_inspection_routes(app: web.Application, state: SandboxState, clock: Clock) -> None:
    """Register ``/__sandbox/...`` on ``app``."""
    handlers = _Inspection(state, clock)
    routes: list[tuple[str, str, Handler]] = [
        ("GET", "/__sandbox/users", handlers.get_users),
        ("GET", "/__sandbox/users/{user_id}/retweets", handlers.get_retweets),
        ("PUT", "/__sandbox/users/{user_id}/retweets", handlers.put_retweets),
        ("GET", "/__sandbox/stats", handlers.get_stats),
        ("GET", "/__sandbox/log", handlers.get_log),
        ("PUT", "/__sandbox/tweets/{tweet_id}", handlers.put_tweet),
        ("POST", "/__sandbox/blocks", handlers.post_block),
        ("POST", "/__sandbox/faults", handlers.post_fault),
        ("POST", "/__sandbox/oauth2/tokens", handlers.post_token),
        ("GET", "/__sandbox/oauth2/issued", handlers.get_issued),
        ("PATCH", "/__sandbox/app", handlers.patch_app),
        ("GET", "/__sandbox/clock", handlers.get_clock),
        ("POST", "/__sandbox/clock", handlers.post_clock),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
