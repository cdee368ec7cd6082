"""`ReportBuilder.add_lines` (a block of lines at a time) against `ReportBuilder.add` (line by
line, the plain way) over random blocks whose stamps are all in the writer's shape: the fast
path of a block, with slots of milliseconds and of seconds, coarsened within a block, stamps
at a slot's very start, lines out of time order, undos, errors and several runs.

CI runs a few seeds; run many by hand with ``BULKRT_REPORT_LINES_SEEDS=2000 pytest
tests/test_report_lines.py``.
"""

from __future__ import annotations

import os
import random
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bulkrt.core.items import Action, ErrorDetail, Status
from bulkrt.core.tiers import WindowLimit
from bulkrt.ledger.counts import StatusTally
from bulkrt.ledger.record import LedgerRecord, read_fields
from bulkrt.reporting import model
from bulkrt.reporting.model import ReportBuilder
from tests.test_report import OK

SEEDS = range(int(os.environ.get("BULKRT_REPORT_LINES_SEEDS", "25")))
#: a stamp `_epoch` reads a millisecond early (68868518512.3999...)
EARLY = 68_868_518_512_400
ERRORS = [ErrorDetail("network", "reset", None), ErrorDetail("https://x/2/problems/usage-capped")]


def _stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S") + (
        f".{ms % 1000:03d}Z"
    )


def lines(rng: random.Random) -> list[LedgerRecord]:
    """Lines stamped in the writer's shape: mostly in time order, some a little or far out
    of it, some at a whole second or a slot's start."""
    # near 2026, or where `_epoch`'s float puts some stamps at a slot's start a millisecond
    # early (68868518512.400 is read as ...512.3999)
    ms = rng.choice([1_795_000_000_000, EARLY - 3000]) + rng.randrange(10**4)
    spacing = rng.choice([1, 5, 50, 700, 4000, 90_000])
    records = []
    for n in range(rng.randint(1, 400)):
        ms += rng.randrange(spacing * 2 + 1)
        at = ms - rng.choice([0, 0, 0, spacing * 20])
        if rng.random() < 0.1:
            at -= at % rng.choice([100, 1000, 2000])  # the very start of a slot
        if rng.random() < 0.1 and ms > EARLY - 10**6:
            at = EARLY
        status = rng.choice([Status.OK, Status.OK, Status.OK, Status.ERROR, Status.REJECTED])
        record = replace(
            OK, ts=_stamp(at + 40), key=f"k{n}", run=f"run-{n * rng.randint(1, 3) // 150}",
            campaign=rng.choice(["spring", "summer", "autumn"] * 3 + [f"c{n % 11}"]),
            account=rng.choice(["acct001", "acct002", "acct003"]), status=status,
            action=rng.choice([Action.RETWEET] * 9 + [Action.UNDO]),
            error=rng.choice(ERRORS) if status is not Status.OK else None,
            attempts=rng.choice([1, 1, 1, 0, 2, 5]), preexisting=rng.choice([False, True, None]),
            sent=rng.choice([_stamp(at), _stamp(at), None]),
        )  # fmt: skip
        records.append(record)
    return records


@pytest.mark.parametrize("seed", SEEDS)
def test_a_block_counts_what_its_lines_count_one_by_one(
    monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Lines added a block at a time (as msgspec reads them) make the report that the same
    lines make added one by one, field for field, and the block went the fast way."""
    rng = random.Random(seed)
    records = lines(rng)
    if rng.random() < 0.5:  # few slots: they are coarsened within a block
        monkeypatch.setattr(model, "MAX_SLOTS", rng.choice([2, 4, 16]))
    window = WindowLimit(50, 900.0)
    plain = ReportBuilder()
    for record in records:
        plain.add(record)
    expected = plain.build(StatusTally().summary("l"), window)
    fast = ReportBuilder()
    plain_blocks = []
    monkeypatch.setattr(ReportBuilder, "_count_times", lambda self, block: plain_blocks.append(1))
    fields = [read_fields(record.to_line().rstrip(b"\n")) for record in records]
    at = 0
    while at < len(fields):
        size = rng.choice([1, 3, 50, 1000])
        fast.add_lines(fields[at : at + size])
        at += size
    assert fast.build(StatusTally().summary("l"), window) == expected
    assert plain_blocks == []
