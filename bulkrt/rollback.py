"""Undo exactly what a campaign did: from a ledger, the undo items that return every (account,
Tweet) the selected campaigns retweeted to its state before them.

For each pair the ledger's lines of the selected campaigns (and of their ``-rollback`` campaigns)
are read in order. A pair is undone when its latest state is ``retweeted: true`` and the
campaign did not find it already retweeted: when the first ``ok`` retweet of the pair was
``preexisting``, the account had retweeted the Tweet by itself, so it is left alone unless
``include_preexisting`` is given.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bulkrt.errors import BulkrtError
from bulkrt.items import Action, Status
from bulkrt.ledger import LedgerRecord
from bulkrt.ledger_reader import read_ledger

__all__ = ["ROLLBACK_SUFFIX", "RollbackError", "RollbackPlan", "plan_rollback", "write_undo_job"]

ROLLBACK_SUFFIX = "-rollback"


class RollbackError(BulkrtError):
    """The rollback asked for cannot be made (nothing selected, a rollback of a rollback)."""


@dataclass(slots=True)
class _Pair:
    campaign: str
    retweeted: bool | None = None
    #: the first ok retweet found the Tweet already retweeted: the state before the campaign
    preexisting: bool | None = None


@dataclass(frozen=True, slots=True)
class UndoRow:
    """One row of the undo job."""

    campaign: str
    account: str
    tweet_id: str


@dataclass(slots=True)
class RollbackPlan:
    """What a rollback selected, and what it left alone and why."""

    campaigns: list[str]
    undo: list[UndoRow] = field(default_factory=list)
    #: pairs kept because they were retweeted before the campaign
    kept_preexisting: int = 0
    #: pairs whose latest state is already not retweeted
    already_undone: int = 0
    #: pairs whose latest state is unknown (e.g. every attempt failed)
    unknown: int = 0


def plan_rollback(
    ledger: Path | str,
    *,
    campaigns: Sequence[str] = (),
    accounts: Sequence[str] = (),
    include_preexisting: bool = False,
) -> RollbackPlan:
    """Read ``ledger`` and choose the undo items; every campaign when ``campaigns`` is empty."""
    wanted = set(campaigns)
    refused = sorted(c for c in wanted if c.endswith(ROLLBACK_SUFFIX))
    if refused:
        raise RollbackError(
            f"{', '.join(refused)}: a rollback campaign cannot be rolled back; to retweet again, "
            f"run the original campaign's job"
        )
    pairs: dict[tuple[str, str], _Pair] = {}
    seen: set[str] = set()
    for record in read_ledger(ledger):
        base = record.campaign.removesuffix(ROLLBACK_SUFFIX)
        if (wanted and base not in wanted) or (accounts and record.account not in accounts):
            continue
        if not record.campaign.endswith(ROLLBACK_SUFFIX):
            seen.add(base)
        _apply(pairs.setdefault((record.account, record.tweet_id), _Pair(base)), record)
    if wanted - seen:
        raise RollbackError(
            f"no lines of campaign(s) {', '.join(sorted(wanted - seen))} in {ledger}"
        )
    if not seen:
        raise RollbackError(f"{ledger} holds no campaign to roll back")
    result = RollbackPlan(sorted(seen))
    for (account, tweet_id), pair in pairs.items():
        if pair.retweeted is None:
            result.unknown += 1
        elif not pair.retweeted:
            result.already_undone += 1
        elif pair.preexisting and not include_preexisting:
            result.kept_preexisting += 1
        else:
            result.undo.append(UndoRow(pair.campaign + ROLLBACK_SUFFIX, account, tweet_id))
    return result


def _apply(pair: _Pair, record: LedgerRecord) -> None:
    if record.status is not Status.OK or record.retweeted is None:
        return
    if record.action is Action.RETWEET and pair.preexisting is None:
        pair.preexisting = record.preexisting
    pair.retweeted = record.retweeted


def write_undo_job(path: Path, rows: Iterable[UndoRow]) -> int:
    """Write the undo job as CSV or JSONL (by the name, ``.gz`` compressed too); returns rows."""
    name = path.name.removesuffix(".gz")
    if not name.endswith((".csv", ".jsonl", ".ndjson")):
        raise RollbackError(f"{path}: name the undo job .csv or .jsonl (optionally .gz)")
    buffer = io.StringIO()
    count = 0
    if name.endswith(".csv"):
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["campaign", "account", "tweet_id", "action"])
        for row in rows:
            writer.writerow([row.campaign, row.account, row.tweet_id, Action.UNDO.value])
            count += 1
    else:
        for row in rows:
            entry = {"campaign": row.campaign, "account": row.account, "tweet_id": row.tweet_id}
            buffer.write(json.dumps({**entry, "action": Action.UNDO.value}) + "\n")
            count += 1
    data = buffer.getvalue().encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return count
