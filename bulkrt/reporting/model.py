"""The campaign report's model: ledger records folded, as they stream, into a timeline of requests,
per-account counts, runs, and error kinds with one example each (pure: no files, no clock).

Memory does not grow with the ledger: the timeline keeps at most `MAX_SLOTS` time slots (it
coarsens its slots when a long ledger needs more), each split among at most
`MAX_CHART_CAMPAIGNS` campaigns and one part for the later ones; runs and error kinds are
capped, and per account only a few counters are kept. Items are counted by their latest line by
`bulkrt.ledger.counts.summarise_ledger`; this module counts lines and requests (``attempts``).

>>> from bulkrt.ledger.record import LedgerRecord
>>> from bulkrt.core.items import Action, Status
>>> builder = ReportBuilder()
>>> builder.add(LedgerRecord("2026-11-26T01:00:00.000Z", "r1", "k", "spring", "acme", "1", "20",
...                          Action.RETWEET, Status.OK, True, False, 200, None, 2))
>>> builder.requests, builder.first_at == builder.last_at
(2, True)
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from operator import attrgetter

from bulkrt.core.items import ErrorDetail, Status
from bulkrt.core.tiers import WindowLimit
from bulkrt.ledger.counts import LedgerSummary
from bulkrt.ledger.record import LedgerRecord, LineFields

__all__ = [
    "EXAMPLE_CHARS",
    "MAX_CHART_CAMPAIGNS",
    "MAX_SLOTS",
    "AccountRow",
    "Bucket",
    "CampaignRequests",
    "CampaignRow",
    "ErrorKind",
    "Report",
    "ReportBuilder",
    "RunSpan",
    "Timeline",
]

#: the most time slots the streaming timeline keeps before it coarsens them
MAX_SLOTS = 4096
#: the most runs and error kinds listed one by one
MAX_RUNS = 50
MAX_KINDS = 40
MAX_CAMPAIGNS = 50
MAX_RUN_CAMPAIGNS = 5
#: the most characters of an error's title or detail an example keeps (a server's whole body
#: can be megabytes; the page is for reading)
EXAMPLE_CHARS = 2000
#: about how many bars the requests chart shows at most
MAX_BARS = 120
#: campaigns the requests chart stacks one by one; later ones share one "other campaigns" part
MAX_CHART_CAMPAIGNS = 8
#: a stamp's whole second in the writer's shape
_SECOND = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", re.ASCII)
#: a stamp's milliseconds and ``Z`` in the writer's shape -> its microseconds
_MICROS = {f"{milli:03d}Z": milli * 1000 for milli in range(1000)}
#: what `ReportBuilder.add_lines` reads of every line at once
_ACCOUNT, _SENT = attrgetter("account"), attrgetter("sent")
#: the epoch
_EPOCH = datetime(1970, 1, 1)
#: slot widths in milliseconds, finest first
_STEPS = tuple(
    int(seconds * 1000)
    for seconds in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600,
                    7200, 21600, 43200, 86400)
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CampaignRequests:
    """One campaign's part of a bar: its requests per action."""

    #: the campaign, or None for the campaigns after the first `MAX_CHART_CAMPAIGNS`
    campaign: str | None
    retweet: int
    undo: int


@dataclass(frozen=True, slots=True)
class Bucket:
    """Requests sent in ``[start, start + width)`` (epoch seconds), per action (a line's
    requests all count at its last send: the ledger keeps no earlier send times)."""

    start: float
    retweet: int
    undo: int
    #: the same requests per campaign, in the timeline's campaign order (only those with any)
    campaigns: tuple[CampaignRequests, ...] = ()


@dataclass(frozen=True, slots=True)
class Timeline:
    """The requests chart: equal buckets, and the rate limit to compare them with."""

    buckets: tuple[Bucket, ...]
    #: seconds per bucket
    width: float
    window: WindowLimit
    #: accounts in the ledger: together they may send ``window.limit`` each per window
    accounts: int
    #: the campaigns the bars stack, in the order they first appear; None: the later ones
    campaigns: tuple[str | None, ...] = ()

    @property
    def capacity(self) -> float | None:
        """Requests per bucket and endpoint all accounts may send; None if a bucket < a window."""
        if self.width < self.window.period:
            return None
        return self.window.limit * self.accounts * self.width / self.window.period


@dataclass(frozen=True, slots=True)
class AccountRow:
    """One account's items by their latest status, and its lines and requests."""

    account: str
    ok: int
    rejected: int
    error: int
    lines: int
    requests: int


def _shortened(error: ErrorDetail) -> ErrorDetail:
    """``error`` with its title and detail cut to `EXAMPLE_CHARS` characters, saying how many
    more there were.

    >>> _shortened(ErrorDetail("k", "t", "d" * 2003)).detail[1995:]
    'ddddd… (3 more characters)'
    """

    def cut(text: str | None) -> str | None:
        if text is None or len(text) <= EXAMPLE_CHARS:
            return text
        return f"{text[:EXAMPLE_CHARS]}… ({len(text) - EXAMPLE_CHARS:,} more characters)"

    return replace(error, title=cut(error.title), detail=cut(error.detail))


@dataclass(frozen=True, slots=True)
class ErrorKind:
    """Items (by latest line) and lines with one kind of error, and the first line of it."""

    kind: str
    items: int
    lines: int
    example: LedgerRecord


@dataclass(frozen=True, slots=True)
class RunSpan:
    """One `bulkrt run` as the ledger shows it: its first and last line, and its lines."""

    run: str
    first: str
    last: str
    lines: int
    #: the campaigns of its lines, in the order they first appear (at most `MAX_RUN_CAMPAIGNS`)
    campaigns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CampaignRow:
    """One campaign: its lines, its requests (HTTP attempts) per action, its first and last line."""

    campaign: str
    lines: int
    retweet_requests: int
    undo_requests: int
    first: str
    last: str


@dataclass(frozen=True, slots=True)
class Report:
    """Everything the HTML report shows."""

    summary: LedgerSummary
    requests: int
    #: ok retweets that found the Tweet already retweeted
    preexisting: int
    first: str | None
    last: str | None
    timeline: Timeline
    accounts: tuple[AccountRow, ...]
    errors: tuple[ErrorKind, ...]
    runs: tuple[RunSpan, ...]
    #: runs in the ledger (more than ``runs`` lists when there were over `MAX_RUNS`)
    run_count: int
    #: each campaign (the first `MAX_CAMPAIGNS`), in the order it first appears
    campaigns: tuple[CampaignRow, ...] = ()


@dataclass(slots=True)
class _AccountCounts:
    lines: int = 0
    requests: int = 0


@dataclass(slots=True)
class ReportBuilder:
    """Folds ledger records, in ledger order, into what `build` turns into a `Report`."""

    requests: int = 0
    preexisting: int = 0
    first_at: float | None = None
    last_at: float | None = None
    first_ts: str | None = None
    last_ts: str | None = None
    #: milliseconds per slot of ``slots`` (grows when the slots would exceed `MAX_SLOTS`)
    step: int = _STEPS[0]
    slots: dict[int, list[int]] = field(default_factory=dict)
    accounts: dict[str, _AccountCounts] = field(default_factory=dict)
    kind_lines: Counter[str] = field(default_factory=Counter)
    examples: dict[str, LedgerRecord] = field(default_factory=dict)
    runs: dict[str, list[str | int]] = field(default_factory=dict)
    run_order: list[str] = field(default_factory=list)
    run_campaigns: dict[str, list[str]] = field(default_factory=dict)
    #: campaign -> [lines, retweet requests, undo requests, first ts, last ts]
    campaigns: dict[str, list[str | int]] = field(default_factory=dict)
    #: the chart's campaigns (the first `MAX_CHART_CAMPAIGNS`), and (slot, campaign's index in
    #: it, or `MAX_CHART_CAMPAIGNS` for the later ones) -> [retweet, undo] requests
    chart_campaigns: list[str] = field(default_factory=list)
    chart_places: dict[str, int] = field(default_factory=dict)
    campaign_slots: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    #: the last second `_epoch` read, and its epoch time in microseconds
    _second: str = ""
    _second_us: int = 0

    def add(self, record: LedgerRecord | LineFields) -> None:
        """Count one ledger line (the plain way: `add_lines` counts the same, faster)."""
        self._count_lines((record,))
        self._count_times((record,))

    def add_lines(  # noqa: C901 (one loop per block, inlined on purpose: not calls per line)
        self, records: Sequence[LedgerRecord | LineFields]
    ) -> None:
        """Count ledger lines, in ledger order: what `add` counts line by line.

        Consecutive lines of one run and campaign are added up before they are counted in
        their run and campaign; consecutive lines of one time slot, campaign and action,
        likewise in their slot: the same sums as line by line, for a fraction of the work.
        When every stamp is in the writer's shape (`_seconds`), one loop counts each line's
        lines, requests and time: a line's time is found from its second's, read once per
        second; the first and last stamps are the least and greatest (their order is their
        times' order); in slots of whole seconds, a line's slot is its second's.
        """
        if not records:
            return
        sent = list(map(_SENT, records))
        stamps = sent if all(sent) else [record.sent or record.ts for record in records]
        seconds = _seconds(stamps)
        if seconds is None:
            self._count_lines(records)
            self._count_times(records)
            return
        accounts, requests, preexisting = self.accounts, self.requests, self.preexisting
        for name, count in Counter(map(_ACCOUNT, records)).items():
            account = accounts.get(name)
            if account is None:
                account = accounts[name] = _AccountCounts()
            account.lines += count
            account.requests += count  # one each; lines of other attempts are made up below
        # the lines of one run and campaign being added up (as in `_count_lines`)
        run_of: str | None = None
        campaign_of, first_ts, last_ts, lines, retweets, undos = "", "", "", 0, 0, 0
        # the requests of one slot and campaign being added up, retweets and undos (as in
        # `_count_times`, which adds them up apart: an undo line's slot and cell are there)
        slot_of: int | None = None
        chart_of, pending, pending_undos = "", 0, 0
        step = self.step
        # the slot of the last line whose slot was computed, and the stamps of its start and
        # end: a line stamped strictly between them is in it (at its start, `_epoch`'s float
        # may put a line one millisecond early, in the slot before)
        slot, start, end = 0, "", ""
        for record, stamp in zip(records, stamps, strict=True):
            attempts, campaign, undo = record.attempts, record.campaign, record.action == "undo"
            requests += attempts
            if attempts != 1:
                accounts[record.account].requests += attempts - 1
            if record.status == "ok":
                if record.preexisting and not undo:
                    preexisting += 1
            elif record.error is not None:
                self._add_error(record)
            run = record.run
            if run == run_of and campaign == campaign_of:
                lines += 1
                last_ts = record.ts
                if undo:
                    undos += attempts
                else:
                    retweets += attempts
            else:
                if run_of is not None:
                    self._add_run(run_of, campaign_of, first_ts, last_ts, lines, retweets, undos)
                run_of, campaign_of, lines = run, campaign, 1
                first_ts = last_ts = record.ts
                retweets, undos = (0, attempts) if undo else (attempts, 0)
            if not start < stamp < end:  # what `_epoch` computes, then the slot
                slot = int((seconds[stamp[:20]] + _MICROS[stamp[20:]]) / 1_000_000 * 1000) // step
                start, end = _stamp(slot * step), _stamp((slot + 1) * step)
            if slot == slot_of and campaign == chart_of:
                if undo:
                    pending_undos += attempts
                else:
                    pending += attempts
                continue
            if pending:
                self._add_requests(slot_of, chart_of, False, pending)
            if pending_undos:
                self._add_requests(slot_of, chart_of, True, pending_undos)
            slot_of, chart_of, pending, pending_undos = slot, campaign, 0, 0
            if self._add_requests(slot, campaign, undo, attempts):
                step, slot_of = self.step, None  # its slot is merged into a coarser one
                start = end = ""
        if run_of is not None:
            self._add_run(run_of, campaign_of, first_ts, last_ts, lines, retweets, undos)
        if pending:
            self._add_requests(slot_of, chart_of, False, pending)
        if pending_undos:
            self._add_requests(slot_of, chart_of, True, pending_undos)
        self.requests, self.preexisting = requests, preexisting
        low, high = min(stamps), max(stamps)
        low_at = (seconds[low[:20]] + _MICROS[low[20:]]) / 1_000_000
        high_at = (seconds[high[:20]] + _MICROS[high[20:]]) / 1_000_000
        if self.first_at is None or low_at < self.first_at:
            self.first_at, self.first_ts = low_at, low
        if self.last_at is None or high_at > self.last_at:
            self.last_at, self.last_ts = high_at, high

    def _count_lines(self, records: Sequence[LedgerRecord | LineFields]) -> None:
        """Count lines and requests in all, per account, per run and per campaign."""
        requests, preexisting, accounts = self.requests, self.preexisting, self.accounts
        # the lines of one run and campaign being added up: run, campaign, first and last
        # stamp, lines, retweet and undo requests
        run_of: str | None = None
        campaign_of, first_ts, last_ts, lines, retweets, undos = "", "", "", 0, 0, 0
        for record in records:
            attempts, run, campaign, ts = record.attempts, record.run, record.campaign, record.ts
            undo = record.action == "undo"
            requests += attempts
            account = accounts.get(record.account)
            if account is None:
                account = accounts[record.account] = _AccountCounts()
            account.lines += 1
            account.requests += attempts
            if record.status == "ok":
                if record.preexisting and not undo:
                    preexisting += 1
            elif record.error is not None:
                self._add_error(record)
            if run == run_of and campaign == campaign_of:
                lines += 1
                last_ts = ts
                if undo:
                    undos += attempts
                else:
                    retweets += attempts
            else:
                if run_of is not None:
                    self._add_run(run_of, campaign_of, first_ts, last_ts, lines, retweets, undos)
                run_of, campaign_of, first_ts, last_ts, lines = run, campaign, ts, ts, 1
                retweets, undos = (0, attempts) if undo else (attempts, 0)
        if run_of is not None:
            self._add_run(run_of, campaign_of, first_ts, last_ts, lines, retweets, undos)
        self.requests, self.preexisting = requests, preexisting

    def _add_error(self, record: LedgerRecord | LineFields) -> None:
        """Count a line with an error in its kind (the first `MAX_KINDS` kinds), and keep the
        first line of each kind as its example."""
        assert record.error is not None
        kind = record.error.kind
        if kind in self.kind_lines or len(self.kind_lines) < MAX_KINDS:
            self.kind_lines[kind] += 1
            if kind not in self.examples:
                example = record if isinstance(record, LedgerRecord) else record.record()
                self.examples[kind] = replace(example, error=_shortened(record.error))

    def _count_times(self, records: Sequence[LedgerRecord | LineFields]) -> None:
        """Count each line's requests at its send time (``sent``), or, on lines written before
        that field, when it finished (``ts``)."""
        # the requests of one slot, campaign and action being added up (the first line's are
        # counted already): slot, campaign, undo, requests
        slot_of: int | None = None
        campaign_of, undo_of, pending = "", False, 0
        step = self.step
        first_at = math.inf if self.first_at is None else self.first_at
        last_at = -math.inf if self.last_at is None else self.last_at
        prefix, second_us = self._second + ".", self._second_us
        for record in records:
            stamp = record.sent or record.ts
            micros = _MICROS.get(stamp[20:]) if stamp[:20] == prefix else None
            if micros is not None:
                at = (second_us + micros) / 1_000_000  # what `_epoch` computes
            else:
                epoch = self._epoch(stamp)
                prefix, second_us = self._second + ".", self._second_us
                if epoch is None:
                    continue
                at = epoch
            if at < first_at:
                first_at, self.first_ts = at, stamp
            if at > last_at:
                last_at, self.last_ts = at, stamp
            index = int(at * 1000) // step
            campaign, undo, attempts = record.campaign, record.action == "undo", record.attempts
            if index == slot_of and campaign == campaign_of and undo == undo_of:
                pending += attempts
                continue
            if pending:
                self._add_requests(slot_of, campaign_of, undo_of, pending)
            slot_of, campaign_of, undo_of, pending = index, campaign, undo, 0
            if self._add_requests(index, campaign, undo, attempts):
                step, slot_of = self.step, None  # its slot is merged into a coarser one
        if pending:
            self._add_requests(slot_of, campaign_of, undo_of, pending)
        self.first_at = None if first_at == math.inf else first_at
        self.last_at = None if last_at == -math.inf else last_at

    def _add_requests(self, index: int | None, campaign: str, undo: bool, requests: int) -> bool:
        """Count requests in slot ``index``, in all and for ``campaign``'s part of the chart;
        coarsen the slots if they grow too many, and say whether they were."""
        assert index is not None
        place = self.chart_places.get(campaign)
        if place is None:
            place = self._chart_index(campaign)
        slot = self.slots.get(index)
        if slot is None:
            slot = self.slots[index] = [0, 0]
        slot[undo] += requests
        cell = self.campaign_slots.get((index, place))
        if cell is None:
            cell = self.campaign_slots[index, place] = [0, 0]
        cell[undo] += requests
        if len(self.slots) > MAX_SLOTS:
            self._coarsen()
            return True
        return False

    def _add_run(
        self, run: str, campaign: str, first: str, last: str, lines: int, retweets: int, undos: int
    ) -> None:
        """Count consecutive lines of one run and campaign (stamped ``first`` to ``last``) in
        their run, their campaign, and their run's campaigns."""
        span = self.runs.get(run)
        if span is not None:
            span[1], span[2] = last, int(span[2]) + lines
        elif len(self.runs) < MAX_RUNS:
            self.runs[run] = [first, last, lines]
            self.run_order.append(run)
        else:
            later = self.runs.setdefault("(later runs)", [first, first, 0])
            later[1], later[2] = last, int(later[2]) + lines
        row = self.campaigns.get(campaign)
        if row is None and len(self.campaigns) < MAX_CAMPAIGNS:
            row = self.campaigns[campaign] = [0, 0, 0, first, first]
        if row is not None:
            row[0] = int(row[0]) + lines
            row[1] = int(row[1]) + retweets
            row[2] = int(row[2]) + undos
            row[4] = last
            names = self.run_campaigns.get(run)
            if names is None:
                names = self.run_campaigns[run] = []
            if len(names) < MAX_RUN_CAMPAIGNS and campaign not in names:
                names.append(campaign)

    def _epoch(self, stamp: str) -> float | None:
        """``datetime.fromisoformat(stamp).timestamp()``, None if ``stamp`` is no time; a stamp
        in the writer's shape (``2026-11-26T01:00:00.123Z``) in the same second as the last
        such one is read without a parse: the lines of a ledger come mostly in time order."""
        if len(stamp) == 24 and stamp[19] == "." and stamp[23] == "Z":
            second, milli = stamp[:19], stamp[20:23]
            if milli.isdigit() and milli.isascii():
                if second != self._second and _SECOND.fullmatch(second):
                    try:
                        whole = datetime.fromisoformat(second + "Z").timestamp()
                    except ValueError:
                        return None
                    self._second, self._second_us = second, int(whole) * 1_000_000
                if second == self._second:
                    # what timestamp() computes: whole microseconds over 10**6
                    return (self._second_us + int(milli) * 1000) / 1_000_000
        try:
            return datetime.fromisoformat(stamp).timestamp()
        except ValueError:
            return None

    def _chart_index(self, campaign: str) -> int:
        """The campaign's place in the chart's stack (`MAX_CHART_CAMPAIGNS`: the later ones)."""
        index = self.chart_places.get(campaign)
        if index is None:
            if len(self.chart_campaigns) >= MAX_CHART_CAMPAIGNS:
                return MAX_CHART_CAMPAIGNS
            index = self.chart_places[campaign] = len(self.chart_campaigns)
            self.chart_campaigns.append(campaign)
        return index

    def _coarsen(self) -> None:
        while len(self.slots) > MAX_SLOTS // 2:
            old, self.step = self.step, next((s for s in _STEPS if s > self.step), self.step * 2)
            merged: dict[int, list[int]] = {}
            for index, (retweet, undo) in self.slots.items():
                slot = merged.setdefault(index * old // self.step, [0, 0])
                slot[0] += retweet
                slot[1] += undo
            self.slots = merged
            cells: dict[tuple[int, int], list[int]] = {}
            for (index, campaign), (retweet, undo) in self.campaign_slots.items():
                cell = cells.setdefault((index * old // self.step, campaign), [0, 0])
                cell[0] += retweet
                cell[1] += undo
            self.campaign_slots = cells

    def build(self, summary: LedgerSummary, window: WindowLimit) -> Report:
        """The report of the records added so far, with item counts from ``summary``."""
        accounts = tuple(
            AccountRow(
                name,
                counts.get(Status.OK, 0),
                counts.get(Status.REJECTED, 0),
                counts.get(Status.ERROR, 0),
                self.accounts[name].lines if name in self.accounts else 0,
                self.accounts[name].requests if name in self.accounts else 0,
            )
            for name, counts in summary.by_account.items()
        )
        errors = tuple(
            ErrorKind(kind, summary.errors.get(kind, 0), lines, self.examples[kind])
            for kind, lines in sorted(
                self.kind_lines.items(), key=lambda kv: (-summary.errors.get(kv[0], 0), -kv[1])
            )
        )
        runs = tuple(
            RunSpan(r, str(v[0]), str(v[1]), int(v[2]), tuple(self.run_campaigns.get(r, ())))
            for r, v in self.runs.items()
        )
        campaigns = tuple(
            CampaignRow(name, int(v[0]), int(v[1]), int(v[2]), str(v[3]), str(v[4]))
            for name, v in self.campaigns.items()
        )
        return Report(
            summary=summary,
            requests=self.requests,
            preexisting=self.preexisting,
            first=self.first_ts,
            last=self.last_ts,
            timeline=self._timeline(window, max(1, len(accounts))),
            accounts=accounts,
            errors=errors,
            runs=runs,
            run_count=len(self.run_order) + ("(later runs)" in self.runs),
            campaigns=campaigns,
        )

    def _timeline(self, window: WindowLimit, accounts: int) -> Timeline:
        if self.first_at is None or self.last_at is None:
            return Timeline((), 1.0, window, accounts)
        span = self.last_at - self.first_at + self.step / 1000
        windows = span / window.period
        if windows >= 3:
            # whole windows per bar, so the bars compare with the limit itself
            width_ms = int(window.period * 1000) * math.ceil(windows / MAX_BARS)
        else:
            width_ms = next((s for s in _STEPS if s * MAX_BARS >= span * 1000), _STEPS[-1])
        width_ms = max(width_ms, self.step)
        origin = int(self.first_at * 1000) // self.step * self.step
        totals: dict[int, list[int]] = {}
        for index, (retweet, undo) in self.slots.items():
            bar = totals.setdefault((index * self.step - origin) // width_ms, [0, 0])
            bar[0] += retweet
            bar[1] += undo
        parts: dict[tuple[int, int], list[int]] = {}
        for (index, campaign), (retweet, undo) in self.campaign_slots.items():
            part = parts.setdefault(((index * self.step - origin) // width_ms, campaign), [0, 0])
            part[0] += retweet
            part[1] += undo
        # the stack's order: the chart's campaigns as they first appeared, then the later ones
        order: dict[int, str | None] = dict(enumerate(self.chart_campaigns))
        if any(campaign == MAX_CHART_CAMPAIGNS for _, campaign in self.campaign_slots):
            order[MAX_CHART_CAMPAIGNS] = None
        count = (int(self.last_at * 1000) - origin) // width_ms + 1
        buckets = []
        for n in range(count):
            retweet, undo = totals.get(n, (0, 0))
            stack = tuple(
                CampaignRequests(name, *parts[n, c]) for c, name in order.items() if (n, c) in parts
            )
            buckets.append(Bucket((origin + n * width_ms) / 1000, retweet, undo, stack))
        names = tuple(order.values())
        return Timeline(tuple(buckets), width_ms / 1000, window, accounts, names)


def _seconds(stamps: list[str]) -> dict[str, int] | None:
    """The epoch time in microseconds of each second of ``stamps`` (each stamp's first 20
    characters: ``2026-11-26T01:00:00.``), when every stamp is in the writer's shape
    (``2026-11-26T01:00:00.123Z``) and no earlier than 1970 (where `int` and ``//`` round
    alike), as `ReportBuilder._epoch` reads it; else None."""
    count = len(stamps)
    if set(map(len, stamps)) != {24}:
        return None
    joined = "".join(stamps)
    if joined[19::24] != "." * count or joined[23::24] != "Z" * count:
        return None
    digits = joined[20::24] + joined[21::24] + joined[22::24]
    if not (digits.isascii() and digits.isdigit()):
        return None
    seconds = {}
    for second in {stamp[:20] for stamp in stamps}:
        if not _SECOND.fullmatch(second[:19]):
            return None
        try:
            whole = int(datetime.fromisoformat(second[:19] + "Z").timestamp())
        except ValueError:
            return None
        if whole < 0:
            return None
        seconds[second] = whole * 1_000_000
    return seconds


def _stamp(ms: int) -> str:
    """The stamp in the writer's shape of ``ms`` milliseconds since the epoch (not before it);
    past the year 9999, a text after every such stamp."""
    try:
        return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds") + "Z"
    except OverflowError:
        return "\x7f"
