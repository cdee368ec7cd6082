"""OAuth 2.0 tokens shared through Redis by every process of the multi-machine mode: a
`bulkrt.shell.tokens.CredentialStore` whose lease is a per-user Redis lock, so a refresh is single
flight across every worker on every machine, and whose tokens are Redis's.

A refresh token rotates on every use, so the rule of `bulkrt.shell.tokens` holds across machines:
whoever refreshes holds the user's lock from reading the stored tokens until the rotated ones are
saved, and everyone else adopts what was saved. The rotated tokens go to Redis first (the copy
every worker reads), then to this machine's accounts file, so the file an operator keeps stays
usable without Redis. A file that is behind (another machine rotated the tokens) is brought up to
date the next time this machine takes the account's lease.

The lock is ``SET NX`` with a random owner token and a 30 s expiry, renewed every 10 s while held
(a token answer may take minutes to come: `bulkrt.shell.credentials`), and released only by its
owner (a Lua compare-and-delete). A holder killed mid-refresh frees the account within 30 s; the
mark it left (``lost``) tells the next holder that the stored refresh token may be spent.

Stored in Redis (prefix first; the user id is the hash tag): ``u:{uid}:cred`` a hash of the
account's ``access_token``, ``refresh_token``, ``expires_at`` (epoch seconds, empty when
unknown) and ``version`` (1 when first copied from an accounts file, one more per rotation);
``u:{uid}:refresh`` the lock (its owner's random token); ``u:{uid}:lost`` a refresh begun and not
finished (a fingerprint of the refresh token it used, when, which host and process).

**Protect this Redis like the accounts files: it holds every OAuth 2.0 account's tokens in
clear.** Anyone who can read it can act as those accounts until the tokens are revoked; require a
password (``requirepass`` or an ACL user), bind it to a private network or use ``rediss://``, and
keep its append-only file and backups as private as the accounts files.

Redis is the source once an account's tokens are in it: an accounts file is only copied in when
Redis holds nothing for that account. After authorising an account again, delete its
``u:{uid}:cred`` key so the next lease copies the new tokens from the file.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import anyio
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bulkrt.errors import AccountsError
from bulkrt.fleet.connection import address_of, patiently
from bulkrt.fleet.keyspace import KeySpace
from bulkrt.logs import register_secrets
from bulkrt.shell.accounts_file import fingerprint, iso, save_oauth2_tokens, stored_tokens
from bulkrt.shell.tokens import LostRefresh, TokenSet

__all__ = ["RedisCredentialStore"]

_log = structlog.get_logger()

T = TypeVar("T")

#: how long the lock lives without renewal (seconds); its holder renews it every third of that
LOCK_TTL = 30.0
#: how often a waiting lease tries the lock again (seconds)
_POLL = 0.02
#: how long an ending lease tries to release its lock while Redis cannot be reached (seconds)
_RELEASE_WAIT = 5.0

# KEYS: 1 the lock.  ARGV: 1 owner, 2 ttl (ms).  Taking it again with the same owner (a retry
# whose first answer was lost) succeeds.
_TAKE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: 1 the lock.  ARGV: 1 owner, 2 ttl (ms).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: 1 the lock.  ARGV: 1 owner.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: 1 the tokens.  ARGV: access ("" for none), refresh, expires_at.  Copies an accounts
# file's tokens in only when Redis holds none; returns the tokens Redis holds afterwards.
_SEED = """
if ARGV[1] ~= '' and redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'access_token', ARGV[1], 'refresh_token', ARGV[2],
             'expires_at', ARGV[3], 'version', 1)
end
return redis.call('HMGET', KEYS[1], 'access_token', 'refresh_token', 'expires_at', 'version')
"""

# KEYS: 1 the tokens, 2 the lost mark.  ARGV: access, refresh, expires_at.  Saving the same
# tokens twice (a retry whose first answer was lost) counts one version.
_SAVE = """
if redis.call('HGET', KEYS[1], 'access_token') ~= ARGV[1] then
  redis.call('HSET', KEYS[1], 'access_token', ARGV[1], 'refresh_token', ARGV[2],
             'expires_at', ARGV[3])
  redis.call('HINCRBY', KEYS[1], 'version', 1)
end
redis.call('DEL', KEYS[2])
return redis.call('HGET', KEYS[1], 'version')
"""


class RedisCredentialStore:
    """OAuth 2.0 tokens kept in Redis and shared by every process that uses it; ``user_ids``
    maps each account name to its platform user id (the key of everything kept per account).

    >>> store = RedisCredentialStore(redis, "bulkrt:", Path("accounts.json"), {"acct1": "42"})
    ... # doctest: +SKIP
    >>> async with store.lease("acct1") as lease:  # doctest: +SKIP
    ...     tokens = lease.stored
    """

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        accounts_file: Path,
        user_ids: Mapping[str, str],
        *,
        lock_ttl: float = LOCK_TTL,
    ) -> None:
        self._lock_ms = round(lock_ttl * 1000)
        self._redis = redis
        self._keys = KeySpace(prefix)
        self._accounts_file = Path(accounts_file)
        self._user_ids = dict(user_ids)
        self._address = address_of(redis)
        self._take = redis.register_script(_TAKE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._seed = redis.register_script(_SEED)
        self._save = redis.register_script(_SAVE)

    async def _patiently(self, op: Callable[[], Awaitable[T]], what: str) -> T:
        """``op`` (harmless to repeat), waited for while Redis cannot be reached."""
        return await patiently(op, what=what, log=_log, url=self._address)

    @asynccontextmanager
    async def lease(self, account: str) -> AsyncIterator[_RedisTokenLease]:
        uid = self._user_ids[account]
        lock = self._keys.refresh_lock(uid)
        owner = secrets.token_hex(16)
        await self._lock(account, lock, owner)
        failure: BaseException | None = None
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._keep, lock, owner)
                lease = _RedisTokenLease(self, account, uid)
                try:
                    await lease.load()
                    yield lease
                except BaseException as exc:  # raised below, outside the group, unwrapped
                    failure = exc
                finally:
                    group.cancel_scope.cancel()
        finally:
            # shielded, so a cancelled lease still frees the lock; bounded, since a lock that
            # cannot be released (Redis down) expires by itself
            with anyio.move_on_after(_RELEASE_WAIT, shield=True):
                await self._patiently(
                    lambda: self._release(keys=[lock], args=[owner]), f"unlocking {account}"
                )
        if failure is not None:
            raise failure

    async def _lock(self, account: str, lock: str, owner: str) -> None:
        """Wait until this lease owns ``lock``."""
        ttl = self._lock_ms
        while True:
            # the lock is another process's, in Redis: there is no event to wait on
            taken = await self._patiently(
                lambda: self._take(keys=[lock], args=[owner, ttl]), f"locking {account}"
            )
            if taken:
                return
            await anyio.sleep(_POLL)

    async def _keep(self, lock: str, owner: str) -> None:
        """Renew the lock while the lease lasts (a token answer may take minutes)."""
        ttl = self._lock_ms
        while True:
            await anyio.sleep(ttl / 1000 / 3)
            try:
                await self._renew(keys=[lock], args=[owner, ttl])
            except (RedisError, OSError) as exc:  # the next renewal may get through
                _log.warning("token_lock_not_renewed", detail=f"{type(exc).__name__}: {exc}")


class _RedisTokenLease:
    """One account's tokens in Redis, read and written while its lock is held."""

    def __init__(self, store: RedisCredentialStore, account: str, uid: str) -> None:
        self._store = store
        self._account = account
        self._cred = store._keys.credentials(uid)
        self._lost_key = store._keys.refresh_lost(uid)
        self._stored: TokenSet | None = None
        self._lost: LostRefresh | None = None

    @property
    def stored(self) -> TokenSet | None:
        return self._stored

    @property
    def lost(self) -> LostRefresh | None:
        return self._lost

    async def load(self) -> None:
        """Read Redis's tokens (copying this machine's accounts file in when Redis holds none),
        the mark of a lost refresh, and bring the accounts file up to date."""
        store = self._store
        try:
            in_file = await anyio.to_thread.run_sync(
                stored_tokens, store._accounts_file, self._account
            )
        except AccountsError as exc:  # Redis may hold the tokens all the same
            _log.warning("accounts_file_unreadable", account=self._account, detail=str(exc))
            in_file = None
        fields = ["", "", ""] if in_file is None else _fields(in_file)
        answer = await store._patiently(
            lambda: store._seed(keys=[self._cred], args=fields),
            f"reading the tokens of {self._account}",
        )
        self._stored = _tokens(answer)
        if self._stored is not None:
            register_secrets([self._stored.access_token, self._stored.refresh_token])
        mark = await store._patiently(
            lambda: store._redis.get(self._lost_key), f"reading the tokens of {self._account}"
        )
        self._lost = _lost(mark, self._stored)
        if self._stored is not None and in_file is not None and self._stored != in_file:
            await self._write_file(self._stored)

    async def reread(self) -> TokenSet | None:
        await self.load()
        return self._stored

    async def begin_refresh(self) -> None:
        token = self._stored.refresh_token if self._stored is not None else None
        mark = json.dumps(
            {
                "token": fingerprint(token),
                "since": iso(datetime.now(UTC)),
                "host": socket.gethostname(),
                "pid": os.getpid(),
            }
        )
        await self._store._patiently(
            lambda: self._store._redis.set(self._lost_key, mark),
            f"marking the refresh of {self._account}",
        )

    async def abandon_refresh(self) -> None:
        await self._store._patiently(
            lambda: self._store._redis.delete(self._lost_key),
            f"clearing the refresh mark of {self._account}",
        )

    async def save(self, tokens: TokenSet) -> None:
        store = self._store
        await store._patiently(
            lambda: store._save(keys=[self._cred, self._lost_key], args=_fields(tokens)),
            f"saving the rotated tokens of {self._account}",
        )
        self._stored, self._lost = tokens, None
        await self._write_file(tokens)

    async def _write_file(self, tokens: TokenSet) -> None:
        """Put ``tokens`` in this machine's accounts file (Redis already holds them)."""
        when = tokens.expires_at
        expires = datetime.fromtimestamp(when, UTC) if when is not None else None
        try:
            await anyio.to_thread.run_sync(
                lambda: save_oauth2_tokens(
                    self._store._accounts_file,
                    self._account,
                    access_token=tokens.access_token,
                    refresh_token=tokens.refresh_token,
                    expires_at=expires,
                )
            )
        except (AccountsError, OSError) as exc:
            _log.warning(
                "accounts_file_not_updated",
                account=self._account,
                path=str(self._store._accounts_file),
                detail=f"{exc}; Redis holds the current tokens",
            )


def _fields(tokens: TokenSet) -> list[str]:
    """``tokens`` as the hash's access_token, refresh_token, expires_at fields."""
    expires = "" if tokens.expires_at is None else repr(tokens.expires_at)
    return [tokens.access_token, tokens.refresh_token or "", expires]


def _tokens(answer: list[str | None]) -> TokenSet | None:
    access, refresh, expires, _version = answer
    if not access:
        return None
    return TokenSet(access, refresh or None, float(expires) if expires else None)


def _lost(mark: object, stored: TokenSet | None) -> LostRefresh | None:
    """The lost refresh ``mark`` describes, if it used the stored refresh token."""
    if not isinstance(mark, str) or stored is None:
        return None
    try:
        body = json.loads(mark)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("token") != fingerprint(stored.refresh_token):
        return None
    return LostRefresh(str(body.get("since", "")), int(body.get("pid", 0)))
