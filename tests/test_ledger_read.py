"""Reading a ledger for `bulkrt status` and `bulkrt report`: the ledger is read once, each line
parsed once (only the lines of repeated keys are read again, for their key), the fast reading
of a line agrees with `LedgerRecord.from_json` on every line (damaged ones included),
torn and damaged lines are skipped and warned about by line number, and lines appended while
a summary reads are not counted."""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from structlog.testing import capture_logs

from bulkrt.commands.report import build_report
from bulkrt.core.items import Action, ErrorDetail, Status
from bulkrt.core.tiers import Tier, limit_model
from bulkrt.ledger import counts, reader
from bulkrt.ledger.counts import StatusTally, summarise_ledger
from bulkrt.ledger.reader import read_ledger
from bulkrt.ledger.record import (
    LedgerRecord,
    LineFields,
    decode_fields,
    decode_lines,
    read_fields,
)
from bulkrt.reporting.model import ReportBuilder
from tests.test_report import OK, START

SEEDS = range(int(os.environ.get("BULKRT_LEDGER_READ_SEEDS", "3")))
#: an ok retweet's record: the report tests' own (`tests.test_report`)
BASE = OK
NETWORK = ErrorDetail("network", "connection reset", "peer closed")
NOT_FOUND = ErrorDetail("https://api.twitter.com/2/problems/resource-not-found", "Not Found")


def stamp(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")[:-6] + "Z"


def campaign_records(rng: random.Random, count: int) -> list[LedgerRecord]:
    """Lines of two runs: errors the second run retries, rejections, undos, keys that need
    escaping, odd account names, lines with and without ``sent``, one stamp that is no time."""
    records = []
    for n in range(count):
        status = rng.choice([Status.OK] * 6 + [Status.ERROR, Status.REJECTED, Status.SUPERSEDED])
        error = {Status.ERROR: NETWORK, Status.REJECTED: NOT_FOUND}.get(status)
        sent = stamp(n * 0.37) if rng.random() < 0.8 else None
        records.append(
            replace(
                BASE, ts=stamp(n * 0.37 + 0.05), key=rng.choice([f"k{n}", json.dumps(["c", n])]),
                account=rng.choice(["acct001", "acct002", 'ac"ct\\3', "ü"]),
                campaign=rng.choice(["spring", "summer"]), status=status, error=error,
                action=rng.choice([Action.RETWEET, Action.UNDO]), attempts=rng.randint(1, 5),
                preexisting=rng.choice([False, True, None]), sent=sent,
            )
        )  # fmt: skip
    records += [replace(r, run="run-2", status=Status.OK, error=None) for r in records[::3]]
    records.append(replace(BASE, key="odd-time", ts="yesterday"))
    return records


def damaged_lines() -> list[bytes]:
    """Lines a crash or a hand edit can leave: torn, not an object, an unknown schema, missing
    or mistyped fields, an unknown status, invalid UTF-8, blank lines and a CRLF line."""
    good = BASE.to_json()
    return [
        good[:40].encode(),
        b"[1, 2]",
        good.replace('"schema":1', '"schema":2').encode(),
        good.replace('"attempts":1', '"attempts":"x"').encode(),
        good.replace('"status":"ok"', '"status":"lost"').encode(),
        good.replace(',"http":200', "").encode(),
        good.replace('"account":"acct001"', '"account":7').encode(),
        good.replace('"error":null', '"error":{"title":"no type"}').encode(),
        good.replace("acct001", "acct\xff").encode("latin-1"),
        b"",
        b"  \t",
        replace(BASE, key="crlf").to_json().encode() + b"\r",
    ]


def write(path: Path, lines: list[bytes], *, torn: bytes = b"") -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines) + torn)
    return path


def reference_report(path: Path, window: Any) -> Any:
    """The report built the slow way: every line read as a `LedgerRecord`, items counted by
    keeping every key's latest line."""
    builder, latest, tally = ReportBuilder(), {}, StatusTally()
    with capture_logs():
        records = list(read_ledger(path))
    for record in records:
        builder.add(record)
        latest[record.key] = record
        tally.undecided += record.preexisting is None and record.status is Status.OK
    tally.lines = len(records)
    tally.unreadable = sum(
        1 for line in reader.scan_ledger(path) if not _readable(line.data)
    )  # fmt: skip
    for r in latest.values():
        tally.add((r.status, r.action, r.account, r.error.kind if r.error else None))
    return builder.build(tally.summary(str(path)), window)


def _readable(data: bytes) -> bool:
    try:
        LedgerRecord.from_json(data)
    except ValueError:
        return False
    return True


class CountingStream:
    """A ledger stream that adds up the bytes read through it."""

    def __init__(self, stream: BinaryIO, counts: Counter[str]) -> None:
        self._stream, self._counts = stream, counts

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._counts["bytes"] += len(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        data = self._stream.readline(size)
        self._counts["bytes"] += len(data)
        return data

    def seek(self, offset: int) -> int:
        return self._stream.seek(offset)

    def __enter__(self) -> CountingStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.close()


@pytest.mark.parametrize("seed", SEEDS)
def test_report_is_the_report_of_the_records_read_one_by_one(tmp_path: Path, seed: int) -> None:
    """The report read in one parse per line equals, field for field, the report built from
    every line read as a `LedgerRecord`, items counted by each key's latest line."""
    rng = random.Random(seed)
    lines = [r.to_json().encode() for r in campaign_records(rng, 300)]
    for bad in damaged_lines():
        lines.insert(rng.randrange(len(lines)), bad)
    path = write(tmp_path / "ledger.jsonl", lines, torn=b'{"schema":1,"ts":"2026')
    window = limit_model(Tier.PRO, limit=5, window=3).retweet
    with capture_logs():
        report = build_report(path, tier=Tier.PRO, limit=5, window=3)
    assert report == reference_report(path, window)
    assert report.summary.unreadable == len(damaged_lines()) - 3 + 1  # blank lines are no lines


def test_report_and_status_read_the_ledger_once_and_parse_each_line_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`report` and `status` read the ledger's bytes once and parse each line once; only the
    lines of keys with several lines are read and parsed a second time, for their key (to
    count items by their latest line in fixed memory)."""
    records = campaign_records(random.Random(7), 200)
    path = write(tmp_path / "ledger.jsonl", [r.to_json().encode() for r in records])
    keys = Counter(r.key for r in records)
    again = [r.to_json().encode() for r in records if keys[r.key] > 1]
    assert again
    counts_: Counter[str] = Counter()
    parsed: Counter[bytes] = Counter()
    decode, from_json = decode_fields, LedgerRecord.from_json

    def counting_open(ledger: Path | str) -> Any:
        counts_["opens"] += 1
        return CountingStream(Path(ledger).open("rb"), counts_)

    def counting_decode(line: bytes) -> LineFields:
        parsed[line] += 1
        return decode(line)

    def counting_decode_lines(text: bytes) -> list[LineFields]:
        parsed.update(text.splitlines())
        return decode_lines(text)

    def counting_from_json(line: str | bytes) -> LedgerRecord:
        parsed[line if isinstance(line, bytes) else line.encode()] += 1
        return from_json(line)

    monkeypatch.setattr(reader, "open_ledger", counting_open)
    monkeypatch.setattr(counts, "open_ledger", counting_open)
    monkeypatch.setattr("bulkrt.ledger.counts.decode_fields", counting_decode)
    monkeypatch.setattr("bulkrt.ledger.counts.decode_lines", counting_decode_lines)
    monkeypatch.setattr("bulkrt.ledger.record.decode_fields", counting_decode)
    monkeypatch.setattr(LedgerRecord, "from_json", counting_from_json)
    for read in (
        lambda: build_report(path, tier=Tier.PRO, limit=None, window=None),
        lambda: summarise_ledger(path),
    ):
        counts_.clear()
        parsed.clear()
        with capture_logs():
            read()
        size = path.stat().st_size
        assert counts_ == {"opens": 2, "bytes": size + sum(len(line) + 1 for line in again)}
        assert parsed == Counter({r.to_json().encode(): 1 + (keys[r.key] > 1) for r in records})


def test_torn_and_damaged_lines_are_skipped_and_warned_about_by_line(tmp_path: Path) -> None:
    """Every unreadable line counts once as unreadable and is warned about with its number and
    `LedgerRecord.from_json`'s reason; the torn last line as torn; blank lines are skipped
    silently; the CRLF line is read."""
    good = [replace(BASE, key=f"g{n}").to_json().encode() for n in range(3)]
    damaged = damaged_lines()
    path = write(tmp_path / "ledger.jsonl", [good[0], *damaged, good[1], good[2]], torn=b'{"sc')
    with capture_logs() as logs:
        summary = summarise_ledger(path)
    expected = []
    for number, line in enumerate([good[0], *damaged, good[1], good[2], b'{"sc'], start=1):
        data = line.rstrip(b"\r")
        if data.strip() and not _readable(data):
            try:
                LedgerRecord.from_json(data)
            except ValueError as exc:
                torn = number == len(damaged) + 4
                event = "ledger_torn_line_skipped" if torn else "ledger_line_skipped"
                expected.append((event, number, str(exc)))
    assert [(e["event"], e["line"], e["reason"]) for e in logs] == expected
    assert (summary.lines, summary.unreadable, summary.items) == (4, len(expected), 4)
    assert expected[-1][0] == "ledger_torn_line_skipped"


def test_lines_appended_while_reading_are_not_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A summary counts what the ledger held when it began: a torn last line that a run
    finishes, and lines it appends, while the summary reads are left out of both passes."""
    lines = [replace(BASE, key=f"k{n}").to_json().encode() for n in range(4)]
    finished = replace(BASE, key="late").to_json().encode()
    path = write(tmp_path / "ledger.jsonl", lines, torn=finished[:25])
    opened = reader.open_ledger

    def appending_open(ledger: Path | str) -> BinaryIO:
        with Path(ledger).open("ab") as out:  # a run finishes its line and writes another
            out.write(finished[25:] + b"\n" + replace(BASE, key="later").to_json().encode())
        return opened(ledger)

    monkeypatch.setattr(reader, "open_ledger", appending_open)
    with capture_logs() as logs:
        summary = summarise_ledger(path)
    assert (summary.lines, summary.unreadable, summary.items) == (4, 0, 4)
    assert logs == []


@pytest.mark.parametrize("seed", SEEDS)
def test_fields_agree_with_the_record_on_mangled_lines(seed: int) -> None:
    """On lines mangled at random (bytes cut, swapped or replaced, values of other JSON types),
    `read_fields` reads what `LedgerRecord.from_json` reads or fails with its reason."""
    rng = random.Random(seed)
    values: list[object] = [None, True, 0, 1, -1, 2**70, 1.5, "", "ok", "undo", [], {}, {"type": 1}]
    fields = list(json.loads(BASE.to_json()))
    for record in campaign_records(rng, 150):
        for _ in range(4):
            line = record.to_json().encode()
            how = rng.randrange(4)
            if how == 0:
                cut = rng.randrange(len(line))
                line = line[:cut] + line[cut + rng.randint(1, 3) :]
            elif how == 1:
                at = rng.randrange(len(line))
                line = line[:at] + bytes([rng.choice(b'"\\{}[],:0aZ \xc3')]) + line[at + 1 :]
            elif how == 2:
                document = json.loads(line)
                document[rng.choice([*fields, "sent"])] = rng.choice(values)
                line = json.dumps(document, ensure_ascii=False).encode()
            _agree(line)


def _agree(line: bytes) -> None:
    try:
        record = LedgerRecord.from_json(line)
    except ValueError as exc:
        with pytest.raises(ValueError) as caught:
            read_fields(line)
        assert str(caught.value) == str(exc)
        return
    fields = read_fields(line)
    assert (fields if isinstance(fields, LedgerRecord) else fields.record()) == record
    assert (
        fields.ts, fields.run, fields.key, fields.campaign, fields.account, fields.action,
        fields.status, fields.preexisting, fields.error, fields.attempts, fields.sent,
    ) == (
        record.ts, record.run, record.key, record.campaign, record.account, record.action,
        record.status, record.preexisting, record.error, record.attempts, record.sent,
    )  # fmt: skip


@pytest.mark.parametrize("seed", SEEDS)
def test_request_times_are_read_as_fromisoformat_reads_them(seed: int) -> None:
    """The report's chart places each line at ``datetime.fromisoformat(stamp).timestamp()``,
    to the bit, for stamps in the writer's shape and any other, valid or not."""
    rng = random.Random(seed)
    builder = ReportBuilder()
    stamps = [stamp(rng.uniform(-1e8, 1e8)) for _ in range(300)]
    stamps += [stamp(1000 + n / 7) for n in range(50)]  # many in the same second
    stamps += [s.replace("T", rng.choice(" tX")) for s in stamps[:20]]
    stamps += [s[:20] + rng.choice(["4x5", "٣٣٣", "12"]) + "Z" for s in stamps[:20]]
    stamps += ["2026-02-30T01:00:00.000Z", "2026-11-26T25:00:00.000Z", "2026-11-26T01:00:00Z"]
    stamps += [s[:19] + ".999+00:00" for s in stamps[:10]]
    for text in stamps + stamps[::-1]:
        try:
            expected: float | None = datetime.fromisoformat(text).timestamp()
        except ValueError:
            expected = None
        assert builder._epoch(text) == expected, text
