"""The accounts file as a `bulkrt.shell.tokens.CredentialStore` shared by every process that uses
it: a lease holds ``<file>.lock`` (an ``flock``, taken without blocking the event loop), reads the
account's tokens and any mark of a refresh whose answer was lost, and writes rotated tokens back
(`bulkrt.shell.accounts_file` does the reading and writing) before the lock is released.

Before reading, a lease adopts what another process's interrupted write-back left (its temporary
file, or rotated tokens it saved elsewhere), account by account, so a run sharing the file does not
present a refresh token that a killed run rotated.

When the file cannot be written (a read-only or full filesystem, a directory this user cannot
write), the lease raises `bulkrt.errors.TokenStoreError`. If that happens before the refresh is
sent, nothing was rotated; if the rotated tokens could not be written back, they are first saved
in ``<file>.rescued-<random>.json`` beside the file or in one of ``rescue_dirs`` (the ledger's
directory), where the next run adopts them, and the error names that file.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import anyio
import structlog

from bulkrt.errors import AccountsError, TokenStoreError
from bulkrt.shell.accounts_file import (
    PRIVATE_MODE,
    adopt_leftovers,
    fingerprint,
    iso,
    lock_path,
    read_marks,
    rescue_tokens,
    set_mark,
    stored_tokens,
    target_of,
    write_tokens,
)
from bulkrt.shell.tokens import LostRefresh, TokenSet

__all__ = ["FileCredentialStore"]

_log = structlog.get_logger()

#: how often a waiting lease tries the lock again (seconds)
_POLL = 0.02


class FileCredentialStore:
    """The accounts file as a credential store shared by every process that uses it."""

    def __init__(self, path: Path | str, *, rescue_dirs: Sequence[Path] = ()) -> None:
        self.path = Path(path)
        #: where rotated tokens the file cannot take are saved, after the file's own directory
        self.rescue_dirs = tuple(rescue_dirs)

    @property
    def target(self) -> Path:
        return target_of(self.path)

    @asynccontextmanager
    async def lease(self, account: str) -> AsyncIterator[_FileLease]:
        target = self.target
        try:
            fd = await _acquire(target)
        except OSError as exc:
            raise TokenStoreError(_where(exc, lock_path(target)), _reason(exc)) from None
        try:
            lease = _FileLease(target, account, self.rescue_dirs)
            await anyio.to_thread.run_sync(lease.adopt_leftovers)
            try:
                await anyio.to_thread.run_sync(lease.load)
            except AccountsError as exc:  # the file went away or was spoilt: nothing was sent
                raise TokenStoreError(target, str(exc)) from None
            yield lease
        finally:
            os.close(fd)


class _FileLease:
    """One account's tokens in the accounts file, read and written while the lock is held."""

    def __init__(self, target: Path, account: str, rescue_dirs: Sequence[Path] = ()) -> None:
        self._target = target
        self._account = account
        self._rescue_dirs = rescue_dirs
        self._stored: TokenSet | None = None
        self._lost: LostRefresh | None = None

    @property
    def stored(self) -> TokenSet | None:
        return self._stored

    @property
    def lost(self) -> LostRefresh | None:
        return self._lost

    def adopt_leftovers(self) -> None:
        """Adopt what another process's interrupted write-back left (best effort: a file that
        cannot be written now is left for the next run)."""
        try:
            adopt_leftovers(self._target, self._rescue_dirs, name_stale=False)
        except (OSError, AccountsError) as exc:
            _log.warning(
                "accounts_file_leftover_unchecked", path=str(self._target), detail=str(exc)
            )

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
        def again() -> None:
            self.adopt_leftovers()
            self.load()

        await anyio.to_thread.run_sync(again)
        return self._stored

    async def begin_refresh(self) -> None:
        token = self._stored.refresh_token if self._stored is not None else None
        mark = {"token": fingerprint(token), "since": iso(datetime.now(UTC)), "pid": os.getpid()}
        try:
            await anyio.to_thread.run_sync(set_mark, self._target, self._account, mark)
        except OSError as exc:  # nothing was sent: the stored refresh token is still good
            raise TokenStoreError(_where(exc, self._target), _reason(exc)) from None

    async def abandon_refresh(self) -> None:
        try:
            await anyio.to_thread.run_sync(set_mark, self._target, self._account, None)
        except OSError as exc:  # the mark stays: the next run warns, then tries the token
            _log.warning("refresh_mark_kept", path=str(self._target), detail=_reason(exc))

    async def save(self, tokens: TokenSet) -> None:
        def write() -> None:
            write_tokens(self._target, self._account, tokens)
            try:
                set_mark(self._target, self._account, None)
            except OSError as exc:  # the tokens are saved; the mark no longer matches them
                _log.warning("refresh_mark_kept", path=str(self._target), detail=_reason(exc))
            self.load()

        try:
            await anyio.to_thread.run_sync(write)
        except (OSError, AccountsError) as exc:
            # The old refresh token is spent and the file cannot take the new one: keep it
            # where the next run finds it before the error stops this one.
            directories = [self._target.parent, *self._rescue_dirs]
            saved = await anyio.to_thread.run_sync(
                rescue_tokens, self._target, self._account, tokens, directories
            )
            where = _where(exc, self._target) if isinstance(exc, OSError) else self._target
            if saved is not None:
                detail = (
                    f"{_reason(exc)}; account {self._account}'s rotated OAuth 2.0 tokens were "
                    f"saved in {saved} instead, and the next run adopts them"
                )
            else:
                detail = (
                    f"{_reason(exc)}; account {self._account}'s rotated OAuth 2.0 tokens could "
                    f"not be saved anywhere (its refresh token in the accounts file is spent: "
                    f"authorise the app again for it)"
                )
            raise TokenStoreError(where, detail, saved=saved) from None


def _reason(exc: OSError | AccountsError) -> str:
    """An OS error in the operator's words (``Read-only file system``)."""
    if isinstance(exc, AccountsError):
        return str(exc)
    return exc.strerror or str(exc)


def _where(exc: OSError, default: Path) -> Path:
    """The file an OS error was about (the lock), else ``default`` (also for a temporary file,
    whose random name would tell the operator nothing)."""
    if not isinstance(exc.filename, str | bytes):
        return default
    named = Path(os.fsdecode(exc.filename))
    return default if named.name.endswith(".tmp") else named


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
