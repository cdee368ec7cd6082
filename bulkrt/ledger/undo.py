"""Undo exactly what a campaign did: from a ledger, the undo items that return every (account,
Tweet) the selected campaigns retweeted to its state before them.

For each pair the ledger's lines of the selected campaigns (and of their ``-rollback`` campaigns)
are read in order. A pair is undone when its latest ``ok`` state is ``retweeted: true`` and the
campaign did not find that retweet in place: when the ``ok`` retweet that made the pair retweeted
(the first, or the first after an undo) was ``preexisting``, the account had retweeted the Tweet by
itself, so it is left alone unless ``include_preexisting`` is given. Other campaigns' lines after
the selected one's count too: their undo undid its retweet, and a retweet they made (``preexisting:
false``) is theirs to roll back. A pair whose latest line ended ``error`` with no ``ok`` state is of
unknown state and left alone (a re-run retries it). An undo whose derived key an earlier rollback
already finished (the Tweet retweeted again since, or the API refused that undo) gets an ``id`` of
its own, so a run sends it (`_keyed`). When its origin is undecidable (``preexisting: null``,
`bulkrt.core.attribution`) the campaign is its likely author: it is undone and listed, unless
``leave_undecided``. The journal beside the ledger (`bulkrt.ledger.journal`) is trusted too: a
retweet it records as made by the campaign is undone whatever the ledger says or lost, and its other
verdicts fill in pairs the ledger holds no ``ok`` retweet line for (`_apply_origins`). A campaign
the journal records but the ledger no longer holds a line of (a backup restored, the ledger emptied)
is selected too, and what came from the journal alone is listed.
`select_undo` is the pure choice over records; `plan_rollback` reads a ledger into it and
`write_undo_job` writes the result as a job file.

>>> from bulkrt.ledger.record import LedgerRecord
>>> def line(tweet: str, preexisting: bool) -> LedgerRecord:
...     return LedgerRecord("t", "r", tweet, "spring", "acme", "1", tweet, Action.RETWEET,
...                         Status.OK, True, preexisting, 200, None, 1)
>>> plan = select_undo([line("20", False), line("21", True)], source="ledger.jsonl")
>>> [row.tweet_id for row in plan.undo], plan.kept_preexisting
(['20'], 1)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from bulkrt.core.attribution import Origin, preexisting
from bulkrt.core.items import Action, Status
from bulkrt.errors import RollbackError
from bulkrt.jobs.campaign import ROLLBACK_SUFFIX
from bulkrt.jobs.job_writer import write_job
from bulkrt.jobs.keys import derived_key
from bulkrt.jobs.rows import Row
from bulkrt.ledger.journal import JournalReading, journal_origins, journal_path
from bulkrt.ledger.reader import read_ledger
from bulkrt.ledger.record import FINISHED, LedgerRecord

__all__ = [
    "ROLLBACK_SUFFIX",
    "RollbackError",
    "RollbackPlan",
    "plan_rollback",
    "select_undo",
    "write_undo_job",
]

#: the longest ``id`` a job file takes (`bulkrt.jobs.rows`)
_MAX_ID = 200
#: files beside a ledger that an undo job must never overwrite
_LEDGER_SIDECARS = ("", ".lock", ".sent")


class _Unset(Enum):
    UNSET = "unset"


_UNSET = _Unset.UNSET


@dataclass(slots=True)
class _Pair:
    """What the selected lines say about one (account, Tweet), in ledger order."""

    campaign: str
    #: the latest ``ok`` state; None while no line ended ok
    retweeted: bool | None = None
    #: who made the retweet that stands: whether the ok retweet that made the pair retweeted
    #: (after it was not, or a 2xx that proves it was not) found the Tweet already retweeted
    #: (None: undecidable, `bulkrt.core.attribution`); unset while no retweet ended ok
    preexisting: bool | None | _Unset = _UNSET
    #: some line ended ``error`` (so with no ok line its state is unknown, not refused)
    failed: bool = False
    #: some selected ledger line names the pair (False: the journal alone knows it)
    in_ledger: bool = True
    #: the pair was retweeted again after an ok undo: the journal's verdict (of its first
    #: retweet) no longer speaks for the one that stands
    again: bool = False
    #: another campaign made the retweet that stands (after this one's was undone): theirs
    other: str | None = None
    #: the latest undo of the pair's rollback ended ``rejected``: the API refused it
    undo_refused: bool = False
    #: the campaign's own undo ended ok while no retweet of its own stood: the account's own
    #: retweet, if it had one, is gone (the answer cannot say), and no rollback gives it back
    owners_undone: bool = False
    #: the key of the latest ``ok`` undo line of the pair (any campaign's), if it is the latest
    #: ``ok`` line: the journal's ``undone`` of the same key orders its later verdicts after it
    undo_key: str | None = None


@dataclass(frozen=True, slots=True)
class RollbackPlan:
    """What a rollback selected, and what it left alone and why (each count is of pairs)."""

    campaigns: tuple[str, ...]
    #: the rows of the undo job: ``undo`` actions of the ``-rollback`` campaign
    undo: tuple[Row, ...] = ()
    #: retweeted before the campaign (its first ok retweet was ``preexisting``)
    kept_preexisting: int = 0
    #: latest state is already not retweeted (undone by the campaign or an earlier rollback)
    already_undone: int = 0
    #: every line was ``rejected``: the API refused, so nothing was retweeted
    never_retweeted: int = 0
    #: no line ended ok and some ended ``error``: the retweet may or may not exist
    unknown: int = 0
    #: retweets of undecidable origin (``preexisting: null``): in ``undo`` unless left alone
    undecided: tuple[Row, ...] = ()
    #: whether the undecided retweets were left alone (``--leave-undecided``)
    undecided_left: bool = False
    #: campaigns the journal alone holds (no ledger line of them is left)
    journal_campaigns: tuple[str, ...] = ()
    #: undo rows of pairs no ledger line names: the journal alone recorded the retweet
    from_journal: tuple[Row, ...] = ()
    #: retweeted again by another (unselected) campaign after this one's was undone: theirs
    other_campaigns: int = 0
    #: (account, Tweet) of the pairs left alone as of unknown state (latest line ``error``)
    unknown_pairs: tuple[tuple[str, str], ...] = ()
    #: undo rows whose earlier undo the API refused (``rejected``): written again with an id
    #: of their own, since the refused one is finished and a run would skip it
    refused_before: tuple[Row, ...] = ()
    #: (account, Tweet) the campaign undid without having retweeted it itself (`_Pair`)
    owners_undone: tuple[tuple[str, str], ...] = ()

    def summary(self, out: str, *, include_preexisting: bool) -> list[str]:
        """The lines `bulkrt rollback` prints: what was selected, what was left alone and why."""
        campaigns = ", ".join(self.campaigns)
        lines = [f"{len(self.undo)} undo item(s) for campaign(s) {campaigns} -> {out}"]
        if include_preexisting:
            lines.append("  including retweets made before the campaign (--include-preexisting)")
        left = [
            (self.kept_preexisting, "retweeted before the campaign (--include-preexisting: undo)"),
            (self.already_undone, "no longer retweeted: nothing to undo"),
            (self.never_retweeted, "never retweeted (the API rejected them): nothing to undo"),
            (self.other_campaigns, "undone since and retweeted again by another campaign: "
                                   "that campaign's to roll back"),
            (self.unknown, "state unknown: their latest items ended error; run the campaign's "
                           "job again with the same --ledger (it retries only those), then roll "
                           "back again"),
        ]  # fmt: skip
        lines += [f"  left alone: {n} {why}" for n, why in left if n]
        if self.undecided:
            what = "left alone (--leave-undecided)" if self.undecided_left else "undone"
            lines.append(
                f"  {len(self.undecided)} of undecidable origin (the campaign or the account "
                f"may have made them), {what}:"
            )
            lines += [f"    {row.account} {row.tweet_id}" for row in self.undecided]
        if not any(n for n, _ in left) and not (self.undecided and self.undecided_left):
            lines.append("  left alone: none")
        if self.refused_before:
            lines.append(
                f"  {len(self.refused_before)} undo item(s) the API refused before (rejected), "
                f"written again with an id of their own; if refused again, check the account:"
            )
            lines += [f"    {row.account} {row.tweet_id}" for row in self.refused_before]
        if self.owners_undone:
            lines.append(
                f"  the campaign(s) undid {len(self.owners_undone)} Tweet(s) it had not "
                f"retweeted itself: if the account had retweeted one of them, that retweet is "
                f"gone, and a rollback does not retweet it again:"
            )
            lines += [f"    {account} {tweet_id}" for account, tweet_id in self.owners_undone]
        if self.journal_campaigns:
            lines.append(
                f"  campaign(s) {', '.join(self.journal_campaigns)}: no ledger line left, "
                f"taken from the journal"
            )
        if self.from_journal:
            lines.append(
                f"  {len(self.from_journal)} undo item(s) from the journal alone "
                f"(their ledger lines are gone):"
            )
            lines += [f"    {row.account} {row.tweet_id}" for row in self.from_journal]
        return lines


def select_undo(
    records: Iterable[LedgerRecord],
    *,
    source: str,
    campaigns: Sequence[str] = (),
    accounts: Sequence[str] = (),
    include_preexisting: bool = False,
    leave_undecided: bool = False,
    origins: Mapping[tuple[str, str, str], Origin] | None = None,
    journal: JournalReading | None = None,
) -> RollbackPlan:
    """Choose the undo items from ``records`` (a ledger in order, named ``source`` in messages).

    Every campaign when ``campaigns`` is empty; every account when ``accounts`` is empty.
    ``origins`` (the journal's, `bulkrt.ledger.journal.read_origins`) wins over the ledger's
    ``preexisting``, and adds the retweets whose ledger lines were lost, and the campaigns
    whose every line was lost. ``journal`` (`bulkrt.ledger.journal.journal_origins`: what
    `plan_rollback` gives) is the same with what the journal says of undos: a verdict after the
    pair's last ``undone`` says what stands even where the ledger ends with that undo, or lacks
    it (an older backup); give one of the two. Retweets of undecidable origin are undone unless
    ``leave_undecided``.
    Raises `RollbackError` for a ``-rollback`` campaign, or a campaign or account with no lines.
    """
    wanted, only = set(campaigns), set(accounts)
    refused = sorted(c for c in wanted if c.endswith(ROLLBACK_SUFFIX))
    if refused:
        raise RollbackError(
            f"{', '.join(refused)}: a rollback campaign cannot be rolled back. To retweet "
            f"again, run the original job with a new --ledger, or under a new campaign name "
            f"(--campaign NAME, for rows that name none): on this ledger its items are "
            f"finished, and a re-run skips them"
        )
    pairs: dict[tuple[str, str], _Pair] = {}
    seen: set[str] = set()
    rollbacks: set[str] = set()
    seen_accounts: set[str] = set()
    #: keys of the selected rollbacks' finished lines: a run skips an undo with one of them
    finished: set[str] = set()
    #: per (account, Tweet), the keys of its ``ok`` undo lines (every campaign's)
    undos: dict[tuple[str, str], set[str]] = {}
    for record in records:
        if record.action is Action.UNDO and record.status is Status.OK:
            undos.setdefault((record.account, record.tweet_id), set()).add(record.key)
        is_rollback = record.campaign.endswith(ROLLBACK_SUFFIX)
        base = record.campaign.removesuffix(ROLLBACK_SUFFIX)
        if wanted and base not in wanted:
            other = pairs.get((record.account, record.tweet_id))
            if other is not None:
                _apply_other(other, record)
            continue
        if is_rollback:
            rollbacks.add(record.campaign)
            if record.status in FINISHED:
                finished.add(record.key)
        else:
            seen.add(base)
        if only and record.account not in only:
            continue
        seen_accounts.add(record.account)
        _apply(pairs.setdefault((record.account, record.tweet_id), _Pair(base)), record)
    if journal is None:
        journal = JournalReading(dict(origins or {}), {}, set(), set())
    elif origins is not None:
        raise ValueError("give the journal's origins once: in origins or in journal")
    # the campaigns the journal names, also those whose every retweet an undo has ended since
    named = {*journal.named, *((campaign, account) for campaign, account, _ in journal.origins)}
    from_journal = {
        campaign
        for campaign, _ in named
        if not campaign.endswith(ROLLBACK_SUFFIX) and (not wanted or campaign in wanted)
    } - seen
    seen |= from_journal
    seen_accounts |= {a for c, a in named if c in seen and (not only or a in only)}
    seen_accounts |= _apply_origins(pairs, journal, seen, only, undos)
    _check_selection(source, wanted, seen, rollbacks, only, seen_accounts)
    plan = _choose(pairs, seen, include_preexisting, leave_undecided)
    undo = tuple(_keyed(row, finished) for row in plan.undo)
    alone = tuple(row for row in undo if not pairs[(row.account, row.tweet_id)].in_ledger)
    again = tuple(row for row in undo if pairs[(row.account, row.tweet_id)].undo_refused)
    return replace(
        plan,
        undo=undo,
        journal_campaigns=tuple(sorted(from_journal)),
        from_journal=alone,
        refused_before=again,
        owners_undone=tuple(key for key, pair in pairs.items() if pair.owners_undone),
    )


def _keyed(row: Row, finished: set[str]) -> Row:
    """``row``, with an ``id`` of its own when the key it would derive is finished already.

    An undo row's derived key is the same in every rollback of the campaign; once an earlier
    rollback's undo of the pair finished (``ok``, then the campaign retweeted the Tweet again;
    or ``rejected``), a run would skip the row and the retweet would stay. The ``id``
    ``<campaign>/<account>/<tweet>/<k>`` takes the first ``k`` not finished, so a rollback
    written again before its undo run ends gives the same key (the run resumes it). An id longer
    than a job file takes (long names) is ``<campaign>/<digest>/<k>`` instead, or
    ``rollback/<digest>/<k>``, the digest naming the pair.

    >>> row = Row("s-rollback", "acme", "20", Action.UNDO)
    >>> _keyed(row, set()).id is None
    True
    >>> _keyed(row, {'["s-rollback","acme","undo","20",0]', "s-rollback/acme/20/1"}).id
    's-rollback/acme/20/2'
    """
    if derived_key(row.campaign, row.account, row.action.value, row.tweet_id, 0) not in finished:
        return row
    k = 1
    while _undo_id(row, k) in finished:
        k += 1
    return replace(row, id=_undo_id(row, k))


def _undo_id(row: Row, k: int) -> str:
    """The ``k``-th id of an undo row of its pair, at most `_MAX_ID` characters."""
    plain = f"{row.campaign}/{row.account}/{row.tweet_id}/{k}"
    if len(plain) <= _MAX_ID:
        return plain
    pair = json.dumps([row.campaign, row.account, row.tweet_id], ensure_ascii=False)
    digest = hashlib.sha256(pair.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    named = f"{row.campaign}/{digest}/{k}"
    return named if len(named) <= _MAX_ID else f"rollback/{digest}/{k}"


def _choose(
    pairs: dict[tuple[str, str], _Pair],
    seen: set[str],
    include_preexisting: bool,
    leave_undecided: bool,
) -> RollbackPlan:
    undo: list[Row] = []
    undecided: list[Row] = []
    unknown: list[tuple[str, str]] = []
    counts = {"kept": 0, "undone": 0, "refused": 0, "other": 0}
    for (account, tweet_id), pair in pairs.items():
        if pair.campaign not in seen:
            continue  # a rollback campaign's own pair whose campaign has no line: nothing to do
        row = Row(pair.campaign + ROLLBACK_SUFFIX, account, tweet_id, Action.UNDO)
        if pair.retweeted is None:
            if pair.failed:
                unknown.append((account, tweet_id))
            else:
                counts["refused"] += 1
        elif pair.other is not None:
            counts["other"] += 1
        elif not pair.retweeted:
            counts["undone"] += 1
        elif pair.preexisting is None:
            undecided.append(row)
            if not leave_undecided:
                undo.append(row)
        elif pair.preexisting is True and not include_preexisting:
            counts["kept"] += 1
        else:
            undo.append(row)
    return RollbackPlan(
        campaigns=tuple(sorted(seen)),
        undo=tuple(undo),
        kept_preexisting=counts["kept"],
        already_undone=counts["undone"],
        never_retweeted=counts["refused"],
        unknown=len(unknown),
        undecided=tuple(undecided),
        undecided_left=leave_undecided,
        other_campaigns=counts["other"],
        unknown_pairs=tuple(unknown),
    )


def _apply_origins(
    pairs: dict[tuple[str, str], _Pair],
    journal: JournalReading,
    seen: set[str],
    only: set[str],
    undos: Mapping[tuple[str, str], set[str]],
) -> set[str]:
    """Add what the journal knows to what the ledger says; return the accounts it names.

    The ledger's first ``ok`` retweet of a pair was attributed with all the evidence there was
    (the journal's included), so it stands, with one exception: a journal that saw the campaign
    make the retweet (a 2xx ``retweeted: true``) wins, because that is proof whatever a later
    line says (a repeated row hears "already retweeted"). Every other journal verdict, and the
    undecidable origin it infers from an attempt that no answer settled (a kill can drop the
    settling event after the ledger line was written), only fills in pairs whose retweet has
    no ``ok`` line in the ledger: lines that were lost, or items that ended refused or in error
    after an attempt that may have been applied.
    """
    accounts: set[str] = set()
    last_undone = journal.last_undone
    for key, last in last_undone.items():
        pair = pairs.get(key)
        ledger_undos = undos.get(key, set())
        if pair is not None and last not in ledger_undos and ledger_undos <= journal.undone_keys:
            # The journal's last undo of the pair has no line in the ledger (an older backup,
            # lines lost), and it knows every undo the ledger holds: what the ledger says stood
            # is older than that undo; a verdict the journal holds (all came after it) says what
            # stands now.
            pair.retweeted, pair.other, pair.undo_key = False, None, last
    for (campaign, account, tweet_id), verdict in journal.origins.items():
        if campaign not in seen or (only and account not in only):
            continue  # not selected (``seen`` holds only the selected, non-rollback campaigns)
        accounts.add(account)
        pair = pairs.setdefault((account, tweet_id), _Pair(campaign, in_ledger=False))
        since = last_undone.get((account, tweet_id))
        if pair.retweeted is False and since is not None and since == pair.undo_key:
            # The verdict is of an attempt after the pair's last undo, which is the ledger's
            # latest word on it (or newer than the ledger): what it says may stand.
            pair.retweeted = True
            pair.preexisting = preexisting(verdict)
            continue
        if pair.campaign != campaign or pair.again or pair.other is not None:
            continue  # the journal's verdict is of an earlier retweet than the one that stands
        if verdict is not Origin.CAMPAIGN and pair.preexisting is not _UNSET:
            continue  # the ledger's own attribution of the pair stands
        if pair.retweeted is None and pair.failed and verdict is Origin.UNDECIDED:
            continue  # its latest line ended error: unknown state, retried by a re-run
        if pair.retweeted is None:
            pair.retweeted = True  # the journal saw it retweeted; its ok line was lost
        pair.preexisting = preexisting(verdict)
    return accounts


def _check_selection(
    source: str,
    wanted: set[str],
    seen: set[str],
    rollbacks: set[str],
    only: set[str],
    seen_accounts: set[str],
) -> None:
    if wanted - seen:
        raise RollbackError(
            f"no lines of campaign(s) {', '.join(sorted(wanted - seen))} in {source}"
        )
    if not seen:
        if rollbacks:
            raise RollbackError(
                f"{source} holds only rollback campaign(s) ({', '.join(sorted(rollbacks))}); "
                f"a rollback cannot be rolled back"
            )
        raise RollbackError(f"{source} holds no campaign to roll back")
    if only - seen_accounts:
        raise RollbackError(
            f"no lines of account(s) {', '.join(sorted(only - seen_accounts))} in campaign(s) "
            f"{', '.join(sorted(seen))} of {source}"
        )


def _apply(pair: _Pair, record: LedgerRecord) -> None:
    if record.action is Action.UNDO and record.campaign.endswith(ROLLBACK_SUFFIX):
        pair.undo_refused = record.status is Status.REJECTED
    elif (
        record.action is Action.UNDO
        and record.status is Status.OK
        and (pair.retweeted is None or (pair.retweeted and pair.preexisting is True))
    ):
        pair.owners_undone = True  # no retweet of the campaign's stood: the owner's, if any
    if record.status is not Status.OK:
        # The latest outcome counts: an error a later run turned into a rejection is final
        # (resume skips it), so it is no longer unknown.
        pair.failed = record.status is Status.ERROR
    if record.status is not Status.OK or record.retweeted is None:
        return
    # A retweet that makes the pair retweeted again (after an undo, or another campaign's
    # retweet) says who made the one that stands; so does a 2xx (``preexisting: false``),
    # which proves the Tweet was not retweeted just before it.
    if (
        record.action is Action.RETWEET
        and record.retweeted
        and (pair.retweeted is not True or pair.other is not None or record.preexisting is False)
    ):
        if pair.retweeted is False:
            pair.again = True
        pair.preexisting = record.preexisting
        pair.other = None
        pair.undo_refused = False
    pair.retweeted = record.retweeted
    if not record.retweeted:
        pair.other = None  # whoever's retweet stood, this line took it back (adv23c C1)
    pair.undo_key = record.key if record.action is Action.UNDO else None


def _apply_other(pair: _Pair, record: LedgerRecord) -> None:
    """What an unselected campaign's line (after the selected one's) did to the pair: its undo
    undid the selected campaign's retweet, and a retweet it made (``preexisting: false``) is
    its own, not the selected campaign's; one it found in place changes nothing."""
    if record.status is not Status.OK or record.retweeted is None:
        return
    if not record.retweeted:
        pair.retweeted = False
        pair.other = None
        pair.undo_key = record.key if record.action is Action.UNDO else None
    elif record.action is Action.RETWEET and record.preexisting is False:
        pair.other = record.campaign
        pair.undo_key = None


def plan_rollback(
    ledger: Path | str,
    *,
    campaigns: Sequence[str] = (),
    accounts: Sequence[str] = (),
    include_preexisting: bool = False,
    leave_undecided: bool = False,
) -> RollbackPlan:
    """Read ``ledger`` and its journal and choose the undo items (see `select_undo`)."""
    return select_undo(
        read_ledger(ledger),
        source=str(ledger),
        campaigns=campaigns,
        accounts=accounts,
        include_preexisting=include_preexisting,
        leave_undecided=leave_undecided,
        journal=journal_origins(Path(ledger)),
    )


def write_undo_job(path: Path, rows: Iterable[Row], *, ledger: Path | None = None) -> int:
    """Write the undo job as CSV or JSONL (by the name, ``.gz`` compressed too); returns rows.

    The file is replaced atomically (`bulkrt.jobs.job_writer.write_job`), and never when it is
    ``ledger`` or one of its sidecar files.
    """
    if ledger is not None and _is_ledger_file(path, ledger):
        raise RollbackError(f"{path}: that is the ledger's own file; name another --out")
    chosen = list(rows)
    try:
        return write_job(path, chosen, ids=any(row.id is not None for row in chosen))
    except ValueError as exc:
        raise RollbackError(str(exc)) from None


def _is_ledger_file(path: Path, ledger: Path) -> bool:
    target = path.resolve()
    if target == journal_path(ledger):
        return True
    return any(target == Path(f"{ledger}{suffix}").resolve() for suffix in _LEDGER_SIDECARS)
