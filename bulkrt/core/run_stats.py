"""What a run has done so far, as one immutable snapshot: the dispatcher owns the counts and
publishes a `RunStats`; the progress display and the summary read it and change nothing.

An item counts once its ledger line is written, not when its answer arrives.

>>> stats = RunStats(total=5, skipped=2, by_status={Status.OK: 1})
>>> stats.finished, stats.count(Status.ERROR)
(3, 0)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bulkrt.core.first_answers import Misconfiguration
from bulkrt.core.items import Status

__all__ = ["RunStats"]


@dataclass(frozen=True, slots=True)
class RunStats:
    """A run's counts at one moment."""

    #: items of the job, including those finished by earlier runs
    total: int = 0
    #: the accounts of the job
    accounts: tuple[str, ...] = ()
    #: items skipped because the ledger holds them as finished, and how many of those are rejected
    skipped: int = 0
    skipped_rejected: int = 0
    #: items of this run whose ledger line is written, per status
    by_status: Mapping[Status, int] = field(default_factory=dict)
    #: HTTP requests sent
    requests: int = 0
    #: requests sent and not answered yet
    in_flight: int = 0
    #: accounts whose credentials failed, with what the operator must do
    reauthorize: Mapping[str, str] = field(default_factory=dict)
    #: set when the first answers proved the API base wrong; the run stopped early
    misconfiguration: Misconfiguration | None = None
    #: per account, the job's finished retweets that a later rollback in the ledger undid (the
    #: run skips them as finished, so the accounts stay without them)
    undone_by_rollback: Mapping[str, int] = field(default_factory=dict)

    def count(self, status: Status) -> int:
        """Items of this run that ended with ``status``."""
        return self.by_status.get(status, 0)

    @property
    def finished(self) -> int:
        """Items with a ledger line: skipped ones and this run's."""
        return self.skipped + sum(self.by_status.values())
