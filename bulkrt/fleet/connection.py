"""The connection to the Redis that the multi-machine mode shares, and the patience to wait for
it while it is down or loading its append-only file after a restart.

`connect` opens a client on a `redis.asyncio.BlockingConnectionPool`: a bounded number of
connections, and a caller that finds them all busy waits for one (the plain pool raises at once
under load). Answers are decoded to ``str`` (``decode_responses=True``): everything bulkrt keeps
in Redis is UTF-8 text (ids, JSON lines, tokens), so no caller handles bytes.

The client never resends a command by itself (redis-py's own retry is turned off): a Lua script
that was sent may have run before the connection broke, and only its caller knows whether
running it twice is harmless. `patiently` is how a caller says it is: it runs an operation again
while Redis cannot be reached, with capped backoff, until it succeeds or the caller is cancelled.
An outage is logged once per process however many operations wait on it (``redis_unreachable``,
naming what waits), and its end once (``redis_back``).

The URL's password never appears in a message: `shown_url` masks it wherever a URL is shown.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit

import anyio
import structlog
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    RedisError,
)
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)
from structlog.typing import FilteringBoundLogger
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

from bulkrt.errors import RedisUnavailable
from bulkrt.logs import register_secrets
from bulkrt.redaction import mask_secrets, masked_url

__all__ = ["MAX_CONNECTIONS", "address_of", "connect", "patiently", "shown_url"]

T = TypeVar("T")
_log: FilteringBoundLogger = structlog.get_logger()

#: connections one process opens at most; more callers wait for a free one
MAX_CONNECTIONS = 64
#: how long a caller waits for a free connection before it counts as a failure (seconds)
POOL_WAIT = 30.0
#: how long connecting may take, and how long an answer may (seconds); a blocking read must
#: ask to block for less than `ANSWER_TIMEOUT`
CONNECT_TIMEOUT = 5.0
ANSWER_TIMEOUT = 30.0
#: `patiently`'s first wait and its longest (seconds)
FIRST_WAIT = 0.1
LONGEST_WAIT = 5.0
#: what stands for a URL's password when it is shown
MASKED = "***"


def shown_url(url: str) -> str:
    """``url`` as a message may show it (`bulkrt.redaction.masked_url`).

    >>> shown_url("rediss://bulkrt:s3cret@redis.example:6380/0")
    'rediss://bulkrt:***@redis.example:6380/0'
    """
    return masked_url(url)


def address_of(redis: Redis) -> str:
    """The URL of the server ``redis`` talks to, without its password (for `patiently`)."""
    pool = redis.connection_pool
    options = pool.connection_kwargs
    if "path" in options:
        return f"unix://{options['path']}"
    scheme = "rediss" if issubclass(pool.connection_class, SSLConnection) else "redis"
    user = f"{options['username']}@" if options.get("username") else ""
    return f"{scheme}://{user}{options.get('host')}:{options.get('port')}/{options.get('db', 0)}"


async def connect(url: str, *, max_connections: int = MAX_CONNECTIONS) -> Redis:
    """A client for the Redis at ``url`` (``redis://`` or ``rediss://``, with a password if it
    asks for one), checked with one PING. Raises `RedisUnavailable` when the URL is not a Redis
    URL, the server cannot be reached, or it refuses the credentials. Close it with ``aclose``."""
    shown = shown_url(url)
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise RedisUnavailable(shown, "not a redis:// or rediss:// URL")
    # a lone user part is as often a password given without its colon: masked as one
    register_secrets([parts.password or parts.username])
    try:
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=POOL_WAIT,
            decode_responses=True,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=ANSWER_TIMEOUT,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
        )
    except ValueError as exc:
        raise RedisUnavailable(shown, f"not a usable URL: {exc}") from None
    client = Redis.from_pool(pool)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        raise RedisUnavailable(shown, _describe(exc)) from None
    return client


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says Redis cannot be reached right now (down, restarting, loading its
    append-only file, a broken connection), as opposed to refusing us for good."""
    if isinstance(exc, AuthenticationError | AuthorizationError):
        return False
    return isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError)


def _describe(exc: BaseException) -> str:
    return mask_secrets(f"{type(exc).__name__}: {exc}")


class _Outage:
    """How many operations of this process wait for one Redis, and since when: the first one to
    wait logs the outage, the last one to get through logs its end."""

    __slots__ = ("since", "waiting")

    def __init__(self) -> None:
        self.waiting = 0
        self.since = 0.0


#: shown URL -> its outage, while operations wait for it
_OUTAGES: dict[str, _Outage] = {}


async def patiently(
    op: Callable[[], Awaitable[T]],
    *,
    what: str,
    log: FilteringBoundLogger | None = None,
    url: str = "redis",
) -> T:
    """``await op()``, run again while Redis cannot be reached (waiting 0.1 s, doubling up to
    5 s), until it succeeds; any other error is raised. Only cancellation gives up.

    ``what`` names what is waiting, for the operator (``"publishing job spring"``); ``url`` is the
    Redis URL (shown with its password masked). Only an operation whose repetition is harmless
    belongs here: one that failed may have run in Redis before its answer was lost.
    """
    try:
        return await op()  # Redis answers: no need for the retry machinery
    except Exception as exc:
        if not _unreachable(exc):
            raise
    # unreachable: from now on, as patiently as the docstring says (a first attempt again at
    # once, then waits between attempts)
    shown = shown_url(url)
    log = log or _log
    waited = False

    def note(state: RetryCallState) -> None:
        nonlocal waited
        if waited:
            return
        waited = True
        outage = _OUTAGES.setdefault(shown, _Outage())
        outage.waiting += 1
        if outage.waiting == 1:
            outage.since = time.monotonic()
            failure = state.outcome.exception() if state.outcome is not None else None
            log.warning(
                "redis_unreachable",
                redis=shown,
                waiting=what,
                detail=_describe(failure) if failure is not None else "",
            )

    retrying = AsyncRetrying(
        retry=retry_if_exception(_unreachable),
        wait=wait_exponential(multiplier=FIRST_WAIT, max=LONGEST_WAIT),
        sleep=anyio.sleep,
        before_sleep=note,
        reraise=True,
    )

    async def attempt() -> T:
        # a coroutine function: tenacity would return a plain callable's awaitable unawaited
        return await op()

    through = False
    try:
        result: T = await retrying(attempt)
        through = True
    finally:
        if waited:
            outage = _OUTAGES[shown]
            outage.waiting -= 1
            if outage.waiting == 0:
                del _OUTAGES[shown]
            if through and outage.waiting == 0:
                log.info(
                    "redis_back",
                    redis=shown,
                    waiting=what,
                    seconds=round(time.monotonic() - outage.since, 1),
                )
    return result
