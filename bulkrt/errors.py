"""The exceptions bulkrt raises, and the `Problem` record that names one bad spot in an input file.

The tree: every exception bulkrt defines derives from `BulkrtError` and lives here, unless it is
private to one module (``_BadInput`` in `bulkrt.commands.expand`); `tests/test_layering.py`
checks both, and names the one class deliberately outside the tree::

    BulkrtError                     anything bulkrt raises on purpose
    ├── InputError                  bad input: nothing was sent, the ledger is untouched (exit 2)
    │   ├── JobInputError           job files: carries every `Problem` found (file, line, field)
    │   └── AccountsError           the accounts file: carries every `Problem` found
    ├── LedgerError                 the ledger cannot be read or written
    │   ├── StorageError            writing it failed during a run (exit 74)
    │   └── LedgerLockedError       another process holds the ledger's lock (exit 2)
    ├── RollbackError               the rollback asked for cannot be made (exit 2)
    ├── RedisUnavailable            the Redis of ``--redis`` cannot be reached, or refuses us
    ├── ReauthorizationNeeded       an OAuth 2.0 refresh token was refused: the account needs
    │   │                           its owner (its items end ``error``)
    │   └── RefreshLost             a token refresh was sent and its answer lost
    ├── RefreshFailed               a token refresh failed; a later attempt may work
    └── TokenStoreError             the accounts file's lock or write-back failed (exit 74)

A `Problem` prints as ``FILE:LINE: field: what is wrong`` (``FILE: field: ...`` when no line
applies), the form `bulkrt validate` and `bulkrt run` show to operators.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bulkrt.redaction import mask_secrets

__all__ = [
    "AccountsError",
    "BulkrtError",
    "InputError",
    "JobInputError",
    "LedgerError",
    "LedgerLockedError",
    "Problem",
    "ReauthorizationNeeded",
    "RefreshFailed",
    "RedisUnavailable",
    "RefreshLost",
    "RollbackError",
    "StorageError",
    "TokenStoreError",
]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input file, at a line and a field.

    >>> str(Problem("jobs.csv", 7, "tweet_id", "not a Tweet ID or post URL: 'abc'"))
    "jobs.csv:7: tweet_id: not a Tweet ID or post URL: 'abc'"
    """

    #: the file as the operator named it (``<stdin>`` for standard input)
    file: str
    #: 1-based line number, or None when the problem is about the whole file
    line: int | None
    #: the field (column, JSON path) at fault, or ``row``/``file``/``header`` for wider problems
    field: str
    #: what is wrong, in the operator's words
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.message}"


class BulkrtError(Exception):
    """Base of every error bulkrt raises on purpose."""


class InputError(BulkrtError):
    """Bad input found before anything was sent; carries every problem found, in file order.

    ``total`` may exceed ``len(problems)`` when only the first ones were kept in memory.
    """

    def __init__(self, problems: Sequence[Problem], total: int | None = None) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.total: int = len(self.problems) if total is None else total
        first = str(self.problems[0]) if self.problems else "no details"
        more = f" (and {self.total - 1} more)" if self.total > 1 else ""
        super().__init__(f"{first}{more}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(total={self.total}, first={self.problems[:1]!r})"


class JobInputError(InputError):
    """A job file has bad rows (or cannot be read); nothing may be sent."""


class AccountsError(InputError):
    """The accounts file is missing, malformed, or names a secret that cannot be resolved."""


class LedgerError(BulkrtError):
    """The ledger cannot be read or written."""

    def __init__(self, path: Path | str, message: str) -> None:
        self.path = str(path)
        self.message = message
        super().__init__(f"{self.path}: {message}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r}, message={self.message!r})"


class StorageError(LedgerError):
    """Writing the ledger or its journal failed during a run (a full disk, an I/O error): the run
    stopped, sending nothing more; the same command resumes once the cause is fixed."""


class LedgerLockedError(LedgerError):
    """Another process holds the ledger's exclusive lock; ``holder`` says who, when it is known."""

    def __init__(self, path: Path | str, holder: str | None) -> None:
        self.holder = holder
        who = f"by {holder}" if holder else "by another process"
        super().__init__(
            path, f"ledger is locked {who}; only one `bulkrt run` may write a ledger at a time"
        )


class RollbackError(BulkrtError):
    """The rollback asked for cannot be made (nothing selected, a rollback of a rollback)."""


class RedisUnavailable(BulkrtError):
    """The Redis of the multi-machine mode cannot be reached, refuses our credentials, or its URL
    is not one; ``url`` is shown with its password masked."""

    def __init__(self, url: str, detail: str) -> None:
        detail = mask_secrets(detail)
        super().__init__(f"redis {url}: {detail}")
        self.url = url
        self.detail = detail

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r}, detail={self.detail!r})"


class ReauthorizationNeeded(BulkrtError):
    """The account's refresh token was refused: only the account owner can authorise again."""

    def __init__(self, account: str, detail: str) -> None:
        detail = mask_secrets(detail)  # printed in the summary: never a token, even echoed
        super().__init__(
            f"account {account}: the OAuth 2.0 refresh token was refused ({detail}); "
            f"authorise the app again for this account and put the new tokens in the accounts "
            f"file. Another cause: a run using another copy of this accounts file rotated it; "
            f"then that copy holds this account's live tokens (runs must share one accounts "
            f"file, not copies)"
        )
        self.account = account
        self.detail = detail


class RefreshFailed(BulkrtError):
    """The token endpoint could not be reached or answered with a server error, or something
    that is not a token endpoint answered; the refresh token was not rotated, and a later attempt
    may work."""

    def __init__(
        self, account: str, detail: str, *, http: int | None = None, not_api: bool = False
    ) -> None:
        detail = mask_secrets(detail)
        super().__init__(f"account {account}: refreshing the OAuth 2.0 token failed: {detail}")
        self.account = account
        self.detail = detail
        #: the answer's HTTP status; None when there was none
        self.http = http
        #: the answer cannot be a token endpoint's (an HTML page, a 4xx without an OAuth error)
        self.not_api = not_api


class RefreshLost(ReauthorizationNeeded):
    """The token request was sent but its answer never arrived: the server may have rotated the
    refresh token, and then the one in the accounts file is spent. The account needs attention
    like a refused one, and is not refreshed again in this run."""

    def __init__(self, account: str, detail: str) -> None:
        detail = mask_secrets(detail)
        BulkrtError.__init__(
            self,
            f"account {account}: the OAuth 2.0 token refresh was sent but its answer was lost "
            f"({detail}); the server may have rotated the refresh token, so the one in the "
            f"accounts file may already be spent. The next run tries it once more and says "
            f"whether it works; if it is refused, authorise the app again for this account",
        )
        self.account = account
        self.detail = detail


class TokenStoreError(BulkrtError):
    """The credential store could not be written during a run (the accounts file's lock, refresh
    mark or write-back: a read-only or full filesystem): the run stops as for a ledger that cannot
    be written. ``saved`` names the file that holds rotated tokens the store could not take, when
    a refresh had already rotated them."""

    def __init__(self, path: Path | str, detail: str, *, saved: Path | None = None) -> None:
        self.path = str(path)
        self.detail = mask_secrets(detail)
        self.saved = saved
        super().__init__(f"{self.path}: {self.detail}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r}, detail={self.detail!r})"
