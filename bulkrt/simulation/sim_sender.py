"""The one class that answers like the X API in a simulation: each request goes to the sandbox's
pure `SandboxState.handle` at the virtual time it arrives, and its `Reply` (or the fault that
replaced it) comes back as the `Exchange` the real client would have returned.

Faults come from the sandbox's own seeded `FaultPlan`, decided per request exactly as its HTTP
app decides them (same identity: method, path and body), and each kind becomes what the client
sees on the wire: a reset is a network failure that may have been applied, a stall or a hold
past the read timeout is a timeout, a gateway page is an HTML 502, a gzip bomb is a
``bad_response`` that was never processed. An answer takes ``latency`` seconds, half on the way
in and half on the way out, so a simulated crash can catch a request before or after the
server applied it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from bulkrt.core.credential_refresh import RefreshReport, RefreshVerdict
from bulkrt.core.items import Action
from bulkrt.core.outcome import FailureKind, TransportFailure
from bulkrt.sandbox.config import Endpoint, FaultKind
from bulkrt.sandbox.problems import Reply
from bulkrt.sandbox.state import ApiCall, SandboxState
from bulkrt.shell.client import MAX_BODY, Authorizer, Exchange

__all__ = ["SimAccount", "SimSender"]

#: the base URL the simulated requests name (OAuth 1.0a would sign it; nothing connects to it)
SIM_BASE = "https://api.x.com"
_GATEWAY_PAGE = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>Bad Gateway</h1></body></html>"
)
_HTML = "text/html; charset=utf-8"
_RESET = TransportFailure(FailureKind.NETWORK, "ServerDisconnectedError: Server disconnected")
_TIMEOUT = TransportFailure(FailureKind.TIMEOUT, "no answer within the timeout")
_OVERSIZED = TransportFailure(
    FailureKind.BAD_RESPONSE, f"HTTP 200 with a body over {MAX_BODY} bytes (decoded); not read"
)


class SimSender:
    """Sends retweets and undos to a `SandboxState` in virtual time (the client's methods).

    >>> from bulkrt.sandbox.config import SandboxConfig
    >>> from bulkrt.shell.client import StaticAuthorization
    >>> state = SandboxState(SandboxConfig(users=1), now=0)
    >>> user = state.world.users[0]
    >>> sender = SimSender(state, clock=lambda: 1.0)
    >>> auth = StaticAuthorization(f"Bearer {user.oauth2_access_token}")
    >>> exchange = anyio.run(sender.retweet, auth, user.user_id, "20")
    >>> exchange.http, exchange.json(), state.retweets[user.user_id]
    (200, {'data': {'retweeted': True}}, {'20'})
    """

    base_url = SIM_BASE

    def __init__(
        self,
        state: SandboxState,
        clock: Callable[[], float],
        *,
        latency: float = 0.0,
        read_timeout: float = 30.0,
    ) -> None:
        self.state = state
        self._clock = clock
        self._half = latency / 2
        self._read_timeout = read_timeout
        #: requests that reached the sandbox, and the virtual time of the first and last one
        self.requests = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        #: per user id, the virtual time of its last request
        self.last_by_user: dict[str, float] = {}

    async def retweet(self, auth: Authorizer, user_id: str, tweet_id: str) -> Exchange:
        """``POST /2/users/{user_id}/retweets`` with ``{"tweet_id": ...}``."""
        return await self.exchange(Action.RETWEET, auth, user_id, tweet_id)

    async def undo(self, auth: Authorizer, user_id: str, tweet_id: str) -> Exchange:
        """``DELETE /2/users/{user_id}/retweets/{tweet_id}``."""
        return await self.exchange(Action.UNDO, auth, user_id, tweet_id)

    async def exchange(
        self, action: Action, auth: Authorizer, user_id: str, tweet_id: str
    ) -> Exchange:
        """One request and its answer, as the real client would return it."""
        if action is Action.RETWEET:
            method, endpoint, source = "POST", Endpoint.RETWEET, None
            path = f"/2/users/{user_id}/retweets"
            body = json.dumps({"tweet_id": tweet_id}).encode()
            headers = {"Content-Type": "application/json"}
        else:
            method, endpoint, source = "DELETE", Endpoint.UNDO, tweet_id
            path = f"/2/users/{user_id}/retweets/{tweet_id}"
            body, headers = b"", {}
        url = SIM_BASE + path
        headers["Authorization"] = await auth.authorization(method, url)
        self._note_sent(user_id)
        state = self.state
        fault = state.faults.decide(f"{method} {path} ".encode() + body, user_id, endpoint)
        await self._travel()
        if fault is FaultKind.HOLD:
            # Held in front of the API: processed late, or dropped when the client has gone.
            if state.config.stall_seconds >= self._read_timeout:
                await anyio.sleep(self._read_timeout)
                state.record(method, path, user_id, "dropped", fault, self._clock())
                return Exchange(None, failure=_TIMEOUT)
            await anyio.sleep(state.config.stall_seconds)
        edge = _at_the_edge(fault)
        if edge is not None:  # the request never reaches the API and is not counted
            state.record(method, path, user_id, str(fault), fault, self._clock())
            await self._travel()
            return edge
        now = self._clock()
        call = ApiCall(method, url, endpoint, headers, body, user_id, source)
        reply = state.handle(call, now, fault)
        if fault is FaultKind.PARTIAL and reply.status == 200 and reply.body is not None:
            reply.body["errors"] = [state.problems.not_found_error(source or user_id)]
        if fault is FaultKind.RESET_AFTER:  # applied, then the connection is reset
            state.record(method, path, user_id, "reset", fault, now)
            await self._travel()
            return Exchange(None, failure=_RESET)
        state.record(method, path, user_id, str(reply.status), fault, now)
        if fault is FaultKind.STALL:  # applied; only the answer is late
            if state.config.stall_seconds >= self._read_timeout:
                await anyio.sleep(self._read_timeout)
                return Exchange(None, failure=_TIMEOUT)
            await anyio.sleep(state.config.stall_seconds)
        await self._travel()
        return _rendered(reply)

    def _note_sent(self, user_id: str) -> None:
        now = self._clock()
        self.last_by_user[user_id] = now
        self.requests += 1
        if self.first_at is None:
            self.first_at = now
        self.last_at = now

    async def _travel(self) -> None:
        """Half the answer's latency: the way in, or the way back."""
        if self._half > 0:
            await anyio.sleep(self._half)


@dataclass(frozen=True, slots=True)
class SimAccount:
    """One account's `bulkrt.shell.sender.Sender` over a `SimSender`."""

    sender: SimSender
    auth: Authorizer
    user_id: str

    @property
    def refreshable(self) -> bool:
        """Simulated tokens never expire, so there is nothing to refresh."""
        return False

    async def send(self, action: Action, tweet_id: str) -> Exchange:
        """Send one request of ``action`` on ``tweet_id`` for this account."""
        return await self.sender.exchange(action, self.auth, self.user_id, tweet_id)

    async def refresh(self) -> RefreshReport:
        """Nothing to refresh (see `refreshable`)."""
        return RefreshReport(RefreshVerdict.UNSUPPORTED)


def _at_the_edge(fault: FaultKind | None) -> Exchange | None:
    """What the client sees of a fault that stops the request before the API, if it is one."""
    if fault is FaultKind.RESET:
        return Exchange(None, failure=_RESET)
    if fault is FaultKind.E502_HTML:
        return Exchange(502, {"content-type": _HTML}, _GATEWAY_PAGE, _HTML)
    if fault is FaultKind.E504_EMPTY:
        return Exchange(504, {"content-length": "0"}, b"", None)
    if fault in (FaultKind.GZIP_BOMB, FaultKind.OVERSIZED):
        return Exchange(None, failure=_OVERSIZED)
    return None


def _rendered(reply: Reply) -> Exchange:
    """A `Reply` as the client reads it: lower-case headers, the JSON text, its content type."""
    headers = {name.lower(): value for name, value in reply.headers.items()}
    if reply.body is None:
        return Exchange(reply.status, headers, b"", None)
    text = json.dumps(reply.body, indent=2) if reply.pretty else json.dumps(reply.body)
    headers["content-type"] = reply.content_type
    return Exchange(reply.status, headers, text.encode(), reply.content_type)
