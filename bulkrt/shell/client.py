"""The one place bulkrt talks HTTP to the X API: an aiohttp session with connect and read
timeouts, one fresh signature per attempt, and every answer returned as a plain `Exchange`.

Bodies are read in chunks up to `MAX_BODY` bytes *after* decompression, so an answer larger than
any the API sends (or a small gzip body that inflates to gigabytes) is a ``bad_response`` failure
and memory stays bounded whatever the server sends.

A token request is the exception to the read timeout: once it is sent, the server may rotate the
refresh token, and its answer is the only copy of the new one, so it is waited for up to
``Timeouts.token_answer`` (see `bulkrt.shell.credentials`).

Nothing here decides what an answer means (`bulkrt.core.outcome` does) or retries (the dispatcher
does, through the scheduler). In particular aiohttp's own silent resend of an idempotent request
after a dropped connection is refused: a resend must be signed afresh (a replayed OAuth 1.0a nonce
is a 401), counted as an attempt, and admitted by the rate-limit model.

>>> import asyncio
>>> async def demo() -> None:
...     async with XClient("http://127.0.0.1:9") as client:
...         exchange = await client.undo(StaticAuthorization("Bearer x"), "1", "2")
...         print(exchange.http, exchange.failure.kind)
>>> asyncio.run(demo())
None network
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol

import aiohttp
import orjson
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse
from aiohttp.client import IDEMPOTENT_METHODS
from yarl import URL

from bulkrt import __version__
from bulkrt.core.credential_refresh import RefreshReport
from bulkrt.core.outcome import FailureKind, TransportFailure

__all__ = ["Authorizer", "Exchange", "StaticAuthorization", "Timeouts", "XClient"]

#: an honest User-Agent: bulkrt never disguises automation
USER_AGENT = f"bulkrt/{__version__}"


class Authorizer(Protocol):
    """Produces the ``Authorization`` header for one attempt of one request."""

    async def authorization(self, method: str, url: str) -> str: ...


@dataclass(frozen=True, slots=True)
class StaticAuthorization:
    """An Authorization value that never changes (tests, app-only tools)."""

    value: str = field(repr=False)

    async def authorization(self, method: str, url: str) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to wait: for a connection, between bytes of an answer, and for a whole request."""

    connect: float = 10.0
    read: float = 30.0
    total: float = 60.0
    #: a sent token request waits this long for its answer, whatever ``read`` and ``total`` say
    token_answer: float = 300.0


#: the largest body bulkrt reads, decoded (the API's answers are a few hundred bytes)
MAX_BODY = 1 << 20


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request's answer, or the transport failure that replaced it."""

    http: int | None
    #: response headers, answering to lower-case names: aiohttp's (their look-ups ignore
    #: case), or a mapping with lower-case names (a test's, a simulation's)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    content_type: str | None = None
    failure: TransportFailure | None = None
    #: whether the request may have reached the server (False only when connecting failed)
    sent: bool = True
    #: set when the request never went out: the credentials could not be refreshed first
    credentials: RefreshReport | None = None
    #: set when the request never went out: a rate-limit budget shared with other processes
    #: (the multi-machine mode) is spent until then (epoch seconds)
    held_until: float | None = None

    def describe(self) -> str:
        """The HTTP status, or what replaced the answer, in a few words."""
        if self.http is not None:
            return f"HTTP {self.http}"
        if self.credentials is not None:
            return self.credentials.message
        return self.failure.detail if self.failure is not None else "no answer"

    def json(self) -> object:
        """The body as JSON, or None when it is not JSON."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None


ClientMiddleware = aiohttp.ClientMiddlewareType


class _SilentResendRefused(aiohttp.ClientConnectionError):
    """aiohttp tried to resend a request on its own after the connection dropped."""


def _one_attempt() -> ClientMiddleware:
    """A per-request middleware that lets a request through once and refuses aiohttp's resend."""
    sent = False

    async def middleware(request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        nonlocal sent
        if sent:
            raise _SilentResendRefused("the connection dropped after the request was sent")
        sent = True
        return await handler(request)

    return middleware


class XClient:
    """Sends retweets, undos and token requests to one API base URL.

    >>> client = XClient("https://api.x.com")  # ``async with client:`` opens the session
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeouts: Timeouts | None = None,
        max_connections: int = 100,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeouts = t = timeouts or Timeouts()
        #: every API request's timeouts, made once (not per request)
        self._timeout = aiohttp.ClientTimeout(
            total=t.total, sock_connect=t.connect, sock_read=t.read
        )
        self._max_connections = max_connections
        self._session = session
        self._owns_session = session is None
        #: each account's retweet URL, as text (what is signed) and parsed (what is sent), made
        #: on its first request rather than on every one
        self._retweet_urls: dict[str, tuple[str, URL]] = {}

    async def __aenter__(self) -> XClient:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                headers={"User-Agent": USER_AGENT},
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    async def retweet(self, auth: Authorizer, user_id: str, tweet_id: str) -> Exchange:
        """``POST /2/users/{user_id}/retweets`` with ``{"tweet_id": ...}``."""
        urls = self._retweet_urls.get(user_id)
        if urls is None:
            url = f"{self.base_url}/2/users/{user_id}/retweets"
            urls = self._retweet_urls[user_id] = (url, URL(url))
        body = orjson.dumps({"tweet_id": tweet_id})
        return await self._send("POST", urls, auth, body, "application/json")

    async def undo(self, auth: Authorizer, user_id: str, tweet_id: str) -> Exchange:
        """``DELETE /2/users/{user_id}/retweets/{tweet_id}``."""
        url = f"{self.base_url}/2/users/{user_id}/retweets/{tweet_id}"
        return await self._send("DELETE", (url, url), auth, None, None)

    async def token(self, form: Mapping[str, str], basic: tuple[str, str] | None) -> Exchange:
        """``POST /2/oauth2/token`` with a form body (and Basic auth for a confidential client)."""
        auth = aiohttp.BasicAuth(*basic) if basic is not None else None
        t = self._timeouts
        # No read timeout short of `token_answer`: a late answer holds the rotated token.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=t.connect, sock_read=max(t.read, t.token_answer)
        )
        return await self._request(
            "POST", f"{self.base_url}/2/oauth2/token", data=dict(form), auth=auth, timeout=timeout
        )

    async def _send(
        self,
        method: str,
        url: tuple[str, str | URL],
        auth: Authorizer,
        body: bytes | None,
        content_type: str | None,
    ) -> Exchange:
        """Sign and send a request to ``url`` (its text, and the same URL as sent)."""
        # Signed here, once per attempt: a fresh nonce and timestamp every time.
        headers = {"Authorization": await auth.authorization(method, url[0])}
        if content_type is not None:
            headers["Content-Type"] = content_type
        return await self._request(method, url[1], data=body, headers=headers)

    async def _request(self, method: str, url: str | URL, **options: Any) -> Exchange:
        """One HTTP exchange, never resent by aiohttp; a failure comes back as an `Exchange`."""
        session = self._require_session()
        options.setdefault("timeout", self._timeout)
        # aiohttp resends on its own only the methods it takes for idempotent (never a POST):
        # those go through the middleware that refuses the resend.
        middlewares = (_one_attempt(),) if method in IDEMPOTENT_METHODS else ()
        try:
            # The API never redirects; a redirect is a proxy's or a wrong base's answer, to be
            # classified as such (following it would turn a POST into a GET elsewhere).
            async with session.request(
                method, url, middlewares=middlewares, allow_redirects=False, **options
            ) as response:
                return await _exchange(response)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return Exchange(None, failure=_failure(exc), sent=not _unsent(exc))

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use the client inside `async with XClient(...)`")
        return self._session


async def _exchange(response: ClientResponse) -> Exchange:
    # aiohttp's headers as they are (they ignore case; `parse_rate_limits` reads them so), not
    # a lower-cased copy of each response's dozen headers
    headers = response.headers
    declared = response.content_length
    content_type = headers.get("Content-Type")
    if declared is not None and "Content-Encoding" not in headers:
        if declared > MAX_BODY:
            return _oversized(response.status)
        # a declared length that is not decoded: read at once, within the bound
        return Exchange(response.status, headers, await response.read(), content_type)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY:
            return _oversized(response.status)
        chunks.append(chunk)
    return Exchange(response.status, headers, b"".join(chunks), content_type)


def _oversized(status: int) -> Exchange:
    detail = f"HTTP {status} with a body over {MAX_BODY} bytes (decoded); not read"
    return Exchange(None, failure=TransportFailure(FailureKind.BAD_RESPONSE, detail))


def _unsent(exc: BaseException) -> bool:
    """Whether the request certainly never reached the server (connecting failed)."""
    return isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)


def _failure(exc: BaseException) -> TransportFailure:
    # A connection that was never made carried no request: proof the attempt had no effect.
    unsent = isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
    if isinstance(exc, TimeoutError):
        if unsent:
            return TransportFailure(FailureKind.TIMEOUT, "no connection within the timeout", True)
        return TransportFailure(FailureKind.TIMEOUT, "no answer within the timeout")
    detail = str(exc) or type(exc).__name__
    return TransportFailure(FailureKind.NETWORK, f"{type(exc).__name__}: {detail}", unsent)
