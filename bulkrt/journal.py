"""Which retweets a crashed run may already have sent: ``<ledger>.sent``, a sidecar of the ledger.

A retweet that reached the API just before a crash has no ledger line, so the resumed run sends
it again and hears "already retweeted". Without more, that reads as a retweet the account had
made by itself (``preexisting``), and a rollback would leave it behind. So before the first
request of each retweet item, its key is appended here (one write, no fsync: it survives the
process, as the ledger's unsynced lines do). A resumed run loads the keys that are still not
finished, and an "already retweeted" for one of them is the campaign's own retweet.

At the end of every run the file is rewritten (temporary file, fsync, rename) with only the keys
that are still unfinished, so it stays small.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Container
from pathlib import Path

from bulkrt.atomic import replacing

__all__ = ["SentJournal"]


class SentJournal:
    """The keys of retweet items sent but not finished, kept beside the ledger.

    >>> import tempfile, pathlib
    >>> ledger = pathlib.Path(tempfile.mkdtemp()) / "l.jsonl"
    >>> journal = SentJournal(ledger); journal.open(finished=set()); journal.mark("k1")
    >>> journal.close(); again = SentJournal(ledger); again.open(finished=set())
    >>> again.sent_before("k1"), again.sent_before("k2")
    (True, False)
    """

    def __init__(self, ledger: Path) -> None:
        self.path = ledger.with_name(ledger.name + ".sent")
        #: keys an earlier run sent and no run has finished
        self._earlier: set[str] = set()
        #: keys this run has sent and not finished
        self._pending: set[str] = set()
        self._fd = -1

    def open(self, *, finished: Container[str]) -> None:
        """Load what earlier runs sent and did not finish; call it under the ledger's lock."""
        with (
            contextlib.suppress(FileNotFoundError),
            self.path.open("r", encoding="utf-8", errors="replace") as lines,
        ):
            for line in lines:
                key = line.rstrip("\n")
                if key and line.endswith("\n") and key not in finished:
                    self._earlier.add(key)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def sent_before(self, key: str) -> bool:
        """Whether a run before this one may have sent ``key``'s retweet."""
        return key in self._earlier

    def mark(self, key: str) -> None:
        """Note that ``key``'s retweet is about to be sent (once per run)."""
        if key in self._pending:
            return
        self._pending.add(key)
        if self._fd >= 0 and "\n" not in key:
            os.write(self._fd, (key + "\n").encode())

    def finished(self, key: str) -> None:
        """``key`` has its final line in the ledger."""
        self._pending.discard(key)
        self._earlier.discard(key)

    def close(self) -> None:
        """Keep only the keys still unfinished (atomically), and close the file."""
        if self._fd < 0:
            return
        os.close(self._fd)
        self._fd = -1
        with replacing(self.path) as out:
            out.writelines(key + "\n" for key in sorted(self._earlier | self._pending))
