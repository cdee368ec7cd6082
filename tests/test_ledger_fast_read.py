"""The one-pass reading of `bulkrt status` and `bulkrt report` against the plain reference (every
line read with json by `LedgerRecord.from_json`, every key's latest line kept in a dict), over
random ledgers with random damage: the same summary, the same report, the same warnings.

CI runs a few seeds; run many by hand with ``BULKRT_FAST_READ_SEEDS=2000 pytest
tests/test_ledger_fast_read.py``.
"""

from __future__ import annotations

import builtins
import json
import os
import random
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from bulkrt.commands.report import build_report
from bulkrt.core.items import Action, ErrorDetail, Status
from bulkrt.core.tiers import Tier, limit_model
from bulkrt.ledger import counts, reader
from bulkrt.ledger.counts import StatusTally
from bulkrt.ledger.record import FAST_LINE, LedgerRecord
from bulkrt.reporting.model import Report, ReportBuilder
from tests.test_report import OK

SEEDS = range(int(os.environ.get("BULKRT_FAST_READ_SEEDS", "12")))
ERRORS = [
    ErrorDetail("network", "connection reset", "peer closed"),
    ErrorDetail("https://api.twitter.com/2/problems/resource-not-found", "Not Found", None),
    ErrorDetail("usage-capped"),
    ErrorDetail("https://api.twitter.com/2/problems/", "odd/", "x" * (FAST_LINE + 10)),
]
#: values a field may be given by a hand edit: of every JSON type
VALUES: list[object] = [None, True, False, 0, 1, 2, 1.0, 2**70, -1, "", "ok", "undo", [], {}]
VALUES += [{"type": "network"}, {"type": 3}, "2026-11-26T01:00:00.000Z", "ü\u2028"]


def records(rng: random.Random) -> list[LedgerRecord]:
    """Lines of up to four runs over a few accounts and campaigns; later runs send some keys
    again (errors and others), stamps in and out of order, within a second and far apart."""
    count = rng.randint(0, 120)
    keys = [rng.choice([f"k{n}", json.dumps(["c", "a", "retweet", str(n), 0]), f'k"\\{n}é'])
            for n in range(count)]  # fmt: skip
    spacing = rng.choice([0.004, 0.3, 7.0, 4000.0])
    lines = []
    for run in range(rng.randint(1, 4)):
        for n, key in enumerate(keys):
            if run and rng.random() < 0.6:
                continue
            status = rng.choice(list(Status))
            error = rng.choice(ERRORS) if status in (Status.ERROR, Status.REJECTED) else None
            at = 1_795_000_000 + (run * count + n) * spacing + rng.choice([0, 0, -spacing * 3])
            stamp = _stamp(at)
            lines.append(
                replace(
                    OK, ts=stamp, run=f"run-{run}", key=key, status=status, error=error,
                    campaign=rng.choice(["spring", "summer", "s\u00e9"]),
                    account=rng.choice(["acct001", "acct002", 'a"b\\c', "ü"]),
                    action=rng.choice(list(Action)), attempts=rng.randint(0, 6),
                    preexisting=rng.choice([False, True, None]),
                    sent=rng.choice([None, stamp, "yesterday"]),
                )
            )  # fmt: skip
    return lines


def _stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _edit(rng: random.Random, line: bytes) -> bytes:
    """A line with bytes or fields changed by hand."""
    how = rng.randrange(5)
    if how == 0:
        at = rng.randrange(len(line))
        spoilt = bytes(rng.choice(b'"\\{}[],:0aZ \xc3\xff\x00\n') for _ in range(2))
        return line[:at] + spoilt + line[at:]
    if how == 1:
        document = json.loads(line)
        document[rng.choice([*document, "sent", "extra"])] = rng.choice(VALUES)
        return json.dumps(document, ensure_ascii=rng.random() < 0.5).encode()
    if how == 2:
        document = json.loads(line)
        del document[rng.choice(list(document))]
        return json.dumps(document).encode()
    if how == 3:  # a field given twice: json keeps the last
        return line[:-1] + b',"status":"' + rng.choice([b"ok", b"error", b"lost"]) + b'"}'
    # bytes that are no UTF-8 where msgspec skips (an unknown field): json refuses the line
    extra = rng.choice([b'"x":"\xff"', b'"\xc3":1', b'"x":{"y":"\xed\xa0\x80"}'])
    return line[:-1] + b"," + extra + b"}"


def damage(rng: random.Random, line: bytes) -> bytes:
    """A line as a crash or a hand edit may leave it (or the line itself)."""
    how = rng.randrange(9)
    if how == 0:
        return line[: rng.randrange(len(line))]  # torn, later closed by a newline
    if how == 1:
        return _edit(rng, line)
    if how == 2:
        return rng.choice([b"\xef\xbb\xbf", b" ", b"\t", b"\x00"]) + line
    if how == 3:
        return line + rng.choice([b"\r", b" \r", b"x", b"\x00", b"}"])
    if how == 4:
        return rng.choice([b"", b"  ", b"\x00" * rng.randint(1, 300), b"[1]", b"null", b"{}"])
    if how == 5:
        return line.replace(b'"schema":1', rng.choice([b'"schema":1.0', b'"schema":true']))
    if how == 6:
        return line.replace(b'"http":200', b'"http":NaN').replace(b'"http":null', b'"http":1e999')
    if how == 7:
        return line.replace(
            b"acct001", rng.choice([b"acct\\ud800", b"acct\xed\xa0\x80", b"\\u00fc"])
        )
    return line


def ledger_bytes(rng: random.Random) -> bytes:
    """A random ledger: good lines, damaged ones, and maybe a torn or zero-filled tail."""
    lines = [r.to_json().encode() for r in records(rng)]
    rate = rng.choice([0, 0.02, 0.15])
    lines = [damage(rng, line) if rng.random() < rate else line for line in lines]
    data = b"".join(line + b"\n" for line in lines)
    tail = rng.randrange(4)
    if tail == 1 and lines:
        data += lines[-1][: rng.randrange(len(lines[-1]))]  # a torn last line
    elif tail == 2:
        data += b"\x00" * rng.randint(1, 5000)  # a zero-filled tail
    elif tail == 3 and lines:
        data += lines[0]  # a last line without its newline, readable
    return data


def reference(path: Path, window: Any) -> tuple[Report, list[tuple[Any, ...]]]:
    """The report and warnings the plain way: each line read with json, every key's latest line
    kept in a dict."""
    builder, latest, tally, warnings = ReportBuilder(), {}, StatusTally(), []
    for line in reader.scan_ledger(path):
        try:
            record = LedgerRecord.from_json(line.data)
        except ValueError as exc:
            tally.unreadable += 1
            event = "ledger_line_skipped" if line.complete else "ledger_torn_line_skipped"
            warnings.append((event, line.number, str(exc)))
            continue
        builder.add(record)
        latest[record.key] = record
        tally.lines += 1
        tally.undecided += record.preexisting is None and record.status is Status.OK
    for r in latest.values():
        tally.add((r.status, r.action, r.account, r.error.kind if r.error else None))
    return builder.build(tally.summary(str(path)), window), warnings


def fast(path: Path) -> tuple[Report, list[tuple[Any, ...]]]:
    with capture_logs() as logs:
        report = build_report(path, tier=Tier.PRO, limit=5, window=3)
    return report, [(e["event"], e["line"], e["reason"]) for e in logs]


@pytest.mark.parametrize("seed", SEEDS)
def test_one_pass_reading_equals_the_plain_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """On a random damaged ledger the one-pass report and summary equal, field for field, those
    read line by line with json and a dict of every key, with the same warnings (event, line
    number, reason); also with tiny read blocks, the key log spilled to its file (or kept in
    memory when no temporary file can be made), and key hashes that collide."""
    rng = random.Random(seed)
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(ledger_bytes(rng))
    expected = reference(path, limit_model(Tier.PRO, limit=5, window=3).retweet)
    assert fast(path) == expected
    monkeypatch.setattr(reader, "BLOCK", rng.choice([1, 7, 64, 700]))
    monkeypatch.setattr(counts._LineLog, "SPILL", rng.choice([1, 3, 50]))
    assert fast(path) == expected
    # no temporary file can be made (an unwritable TMPDIR): the key log stays in memory
    with monkeypatch.context() as no_tmp:
        no_tmp.setattr("bulkrt.ledger.counts.tempfile.TemporaryFile", _unwritable_tmpdir)
        assert fast(path) == expected
    # few hash values: distinct keys share hashes, and must still count apart
    monkeypatch.setattr(counts, "hash", lambda key: builtins.hash(key) % 5, raising=False)
    assert fast(path) == expected


def _unwritable_tmpdir() -> None:
    raise PermissionError(13, "Permission denied", "/tmp/unwritable")
