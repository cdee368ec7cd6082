"""Appending to the ledger: one whole line per write, under an exclusive lock, fsync'd in groups.

Each record becomes one ``os.write`` of one line on a descriptor opened with ``O_APPEND``, so the
line reaches the operating system at once (no user-space buffer to lose). ``fsync`` is what makes
it survive a power cut; it is grouped: after every 100 lines, at the first write a second or
more after the last sync, on `LedgerWriter.sync_if_due` (the run calls it four times a second,
so a line written just before a long rate-limit wait is on disk within a second) and on close.
A crash can so lose at most the last second of lines, and those items are sent again on resume.

The lock is ``fcntl.flock`` on a sidecar file ``<ledger>.lock`` (taken without waiting), named
from the path the ledger's name resolves to, so a symlink shares its target's lock; then on the
ledger's own inode, so a hard link (another name) is refused too. A line is one ``write``; a
write that fails (a full disk, an I/O error) cuts the file back to the line's start, marks the
writer broken and raises `LedgerError`: no torn line stays in the middle of the ledger. The
holder writes its pid, host and start time into ``.lock``, so a second run can say who holds
it. The kernel releases the lock when the process dies, so a stale ``.lock`` file never
blocks anyone; it is left in place on purpose (deleting it would let two processes lock two
different files).

If a crash left a torn last line, the writer first ends it with a newline, so its own lines
stay whole; readers skip the torn line with a warning.

Usage (from one event loop or thread: writes are synchronous)::

    with LedgerWriter(path, secrets=accounts.secrets()) as ledger:
        ledger.write(record)
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import structlog

from bulkrt.atomic import fsync_directory
from bulkrt.errors import LedgerError, LedgerLockedError
from bulkrt.ledger.reader import LedgerStamp
from bulkrt.ledger.record import LedgerRecord
from bulkrt.redaction import Redactor

__all__ = ["LedgerWriter", "redacted"]

_log = structlog.get_logger()


class LedgerWriter:
    """Appends `LedgerRecord` lines to one ledger, holding its lock from `open` to `close`.

    Args:
        path: the ledger file; created if missing (its directory must exist).
        secrets: values that must never reach the ledger; any found in a line is masked.
        sync_lines: fsync after this many lines since the last sync.
        sync_seconds: fsync at the first write this many seconds after the last sync.
        clock: monotonic seconds (injected so tests need not sleep).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        secrets: Iterable[str] = (),
        sync_lines: int = 100,
        sync_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        # Sidecars belong to the file, not to one of its names: a symlink shares its target's.
        real = self.path.resolve()
        self.lock_path = real.with_name(real.name + ".lock")
        self._redactor = Redactor(secrets)
        self._sync_lines = sync_lines
        self._sync_seconds = sync_seconds
        self._clock = clock
        self._fd = -1
        self._lock_fd = -1
        self._unsynced = 0
        self._last_sync = 0.0
        #: the ledger's size: where the next line starts
        self._end = 0
        #: a write or sync failed: nothing more is written, and `close` does not sync
        self.broken = False
        #: lines written by this writer
        self.lines = 0
        #: the ledger's size at the last fsync: what a crash cannot take away
        self.synced = 0
        #: the ledger as the lock found it, before any write (None: this writer created it), so
        #: a run can tell whether finished keys read before the lock are still the ledger's
        self.found: LedgerStamp = None

    def __enter__(self) -> LedgerWriter:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Take the lock (raising `LedgerLockedError` if held) and open the ledger for appending."""
        self._lock()
        try:
            created = not self.path.exists()
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            if created:
                fsync_directory(self.path.parent)
            self._lock_inode()
            info = os.fstat(self._fd)
            self._end = info.st_size
            if not created:
                self.found = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
            self._close_torn_line()
            self.synced = self._end
        except LedgerLockedError:
            self.close()
            raise
        except OSError as exc:
            self.close()
            raise LedgerError(self.path, f"cannot open the ledger: {exc.strerror or exc}") from None
        self._last_sync = self._clock()

    def learn(self, secrets: Iterable[str | None]) -> None:
        """Mask these secrets too from now on (tokens issued during the run)."""
        self._redactor.add(secrets)

    def write(self, record: LedgerRecord) -> None:
        """Append ``record`` as one line in one write; fsync if a group is due."""
        if self._redactor:
            record = redacted(record, self._redactor)
        self._write(record.to_line())
        self.lines += 1
        self._unsynced += 1
        self.sync_if_due()

    def sync_if_due(self) -> None:
        """fsync when enough lines or enough time have gone by since the last sync."""
        if self._unsynced and (
            self._unsynced >= self._sync_lines
            or self._clock() - self._last_sync >= self._sync_seconds
        ):
            self.sync()

    def sync(self) -> None:
        """fsync the ledger now."""
        if self._fd < 0:
            return
        try:
            os.fsync(self._fd)
        except OSError as exc:
            self.broken = True
            raise LedgerError(self.path, f"cannot sync the ledger: {exc.strerror}") from None
        self._unsynced = 0
        self._last_sync = self._clock()
        self.synced = self._end

    def crash(self) -> None:
        """Close as a crash would (a simulation's kill): no sync, and the lines written since
        the last fsync are gone."""
        if self._fd >= 0 and not self.broken:
            os.ftruncate(self._fd, self.synced)
        self.broken = True
        self.close()

    def close(self) -> None:
        """Sync, close the ledger and release the lock; safe to call twice."""
        try:
            if self._fd >= 0 and not self.broken:
                self.sync()
        finally:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            if self._lock_fd >= 0:
                os.ftruncate(self._lock_fd, 0)
                os.close(self._lock_fd)
                self._lock_fd = -1

    def _lock(self) -> None:
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LedgerError(self.lock_path, f"cannot create the lock: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or None
            os.close(fd)
            raise LedgerLockedError(self.path, holder) from None
        since = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {since}\n".encode(), 0)
        self._lock_fd = fd

    def _lock_inode(self) -> None:
        """Lock the ledger's inode too: a hard link (another name, another ``.lock``) shares it."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = -1
            raise LedgerLockedError(self.path, None) from None

    def _close_torn_line(self) -> None:
        size = os.fstat(self._fd).st_size
        if size and os.pread(self._fd, 1, size - 1) != b"\n":
            _log.warning("ledger_torn_line_closed", ledger=str(self.path))
            self._write(b"\n")

    def _write(self, data: bytes) -> None:
        """Append ``data`` (whole lines); on failure cut the file back to where it started."""
        if self.broken:
            raise LedgerError(self.path, "the ledger could not be written before")
        try:
            written = os.write(self._fd, data)
            # A regular file takes the whole line at once; a short write (a disk filling up) is
            # finished if the disk takes the rest, and otherwise cut back below.
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError as exc:
            self.broken = True
            with suppress(OSError):
                os.ftruncate(self._fd, self._end)  # no torn line stays in the middle
            raise LedgerError(self.path, f"cannot write the ledger: {exc.strerror}") from None
        self._end += len(data)


def redacted(record: LedgerRecord, redactor: Redactor) -> LedgerRecord:
    """``record`` with any secret in its free-text fields masked.

    The other fields are digits, enums, timestamps or numbers bulkrt makes itself.
    """
    mask = redactor.mask
    error = record.error
    if error is not None:
        error = replace(
            error,
            type=mask(error.type),
            title=mask(error.title) if error.title else error.title,
            detail=mask(error.detail) if error.detail else error.detail,
        )
    masked = (mask(record.campaign), mask(record.account), mask(record.key), error)
    if masked == (record.campaign, record.account, record.key, record.error):
        return record  # nothing to mask, the common case: no copy
    campaign, account, key, error = masked
    return replace(record, campaign=campaign, account=account, key=key, error=error)
