"""The accounts file as a `bulkrt.shell.tokens.CredentialStore` shared by every process that uses
it: a lease holds ``<file>.lock`` (an ``flock``, taken without blocking the event loop), reads the
account's tokens and any mark of a refresh whose answer was lost, and writes rotated tokens back
(`bulkrt.shell.accounts_file` does the reading and writing) before the lock is released.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import anyio

from bulkrt.shell.accounts_file import (
    PRIVATE_MODE,
    fingerprint,
    iso,
    lock_path,
    read_marks,
    set_mark,
    stored_tokens,
    target_of,
    write_tokens,
)
from bulkrt.shell.tokens import LostRefresh, TokenSet

__all__ = ["FileCredentialStore"]

#: how often a waiting lease tries the lock again (seconds)
_POLL = 0.02


class FileCredentialStore:
    """The accounts file as a credential store shared by every process that uses it."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @property
    def target(self) -> Path:
        return target_of(self.path)

    @asynccontextmanager
    async def lease(self, account: str) -> AsyncIterator[_FileLease]:
        target = self.target
        fd = await _acquire(target)
        try:
            lease = _FileLease(target, account)
            await anyio.to_thread.run_sync(lease.load)
            yield lease
        finally:
            os.close(fd)


class _FileLease:
    """One account's tokens in the accounts file, read and written while the lock is held."""

    def __init__(self, target: Path, account: str) -> None:
        self._target = target
        self._account = account
        self._stored: TokenSet | None = None
        self._lost: LostRefresh | None = None

    @property
    def stored(self) -> TokenSet | None:
        return self._stored

    @property
    def lost(self) -> LostRefresh | None:
        return self._lost

    def load(self) -> None:
        self._stored = stored_tokens(self._target, self._account)
        mark = read_marks(self._target).get(self._account)
        self._lost = None
        if (
            isinstance(mark, dict)
            and self._stored is not None
            and mark.get("token") == fingerprint(self._stored.refresh_token)
        ):
            self._lost = LostRefresh(str(mark.get("since", "")), int(mark.get("pid", 0)))

    async def reread(self) -> TokenSet | None:
        await anyio.to_thread.run_sync(self.load)
        return self._stored

    async def begin_refresh(self) -> None:
        token = self._stored.refresh_token if self._stored is not None else None
        mark = {"token": fingerprint(token), "since": iso(datetime.now(UTC)), "pid": os.getpid()}
        await anyio.to_thread.run_sync(set_mark, self._target, self._account, mark)

    async def abandon_refresh(self) -> None:
        await anyio.to_thread.run_sync(set_mark, self._target, self._account, None)

    async def save(self, tokens: TokenSet) -> None:
        def write() -> None:
            write_tokens(self._target, self._account, tokens)
            set_mark(self._target, self._account, None)
            self.load()

        await anyio.to_thread.run_sync(write)


async def _acquire(target: Path) -> int:
    """Take ``<target>.lock`` without blocking the event loop; returns the descriptor to close."""
    fd = os.open(lock_path(target), os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
            await anyio.sleep(_POLL)
    except BaseException:
        os.close(fd)
        raise
