"""The ledger: line format, the writer (whole lines, fsync, lock, redaction), reading and resume."""

from __future__ import annotations

import ctypes
import json
import os
import random
import struct
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from structlog.testing import capture_logs

from bulkrt.cli import main
from bulkrt.core.items import Action, ErrorDetail, Item, Status
from bulkrt.errors import InputError, LedgerError, LedgerLockedError
from bulkrt.jobs.keys import derived_key
from bulkrt.jobs.loader import check_jobs, open_jobs, read_items
from bulkrt.ledger.reader import read_ledger
from bulkrt.ledger.record import FINISHED, LedgerRecord
from bulkrt.ledger.resume import ResumeScan, finished_keys, plan_resume
from bulkrt.ledger.writer import LedgerWriter

#: the ledger fields, in the README's order
LEDGER_FIELDS = [
    "schema", "ts", "run", "key", "campaign", "account", "user_id", "tweet_id", "action",
    "status", "retweeted", "preexisting", "http", "error", "attempts",
]  # fmt: skip

RECORD = LedgerRecord(
    ts="2026-11-26T01:00:00Z",
    run="run-1",
    key=derived_key("spring", "acct001", "retweet", "20", 0),
    campaign="spring",
    account="acct001",
    user_id="1001",
    tweet_id="20",
    action=Action.RETWEET,
    status=Status.OK,
    retweeted=True,
    preexisting=False,
    http=200,
    error=None,
    attempts=1,
)


def _record(n: int, status: Status = Status.OK) -> LedgerRecord:
    key = derived_key("spring", "acct001", "retweet", str(20 + n), 0)
    return replace(RECORD, key=key, tweet_id=str(20 + n), status=status)


class TestRecord:
    def test_a_line_has_exactly_the_contract_fields_in_order(self) -> None:
        """to_json writes one line with the README's fields, schema first, and nothing else."""
        line = RECORD.to_json()
        assert "\n" not in line
        assert list(json.loads(line)) == LEDGER_FIELDS
        assert json.loads(line)["schema"] == 1

    def test_a_line_reads_back_as_the_same_record(self) -> None:
        """from_json(to_json(r)) == r, error object and non-ASCII text included."""
        record = replace(
            RECORD,
            campaign="été",
            status=Status.REJECTED,
            retweeted=None,
            error=ErrorDetail("https://api.twitter.com/2/problems/resource-not-found", "Not Found"),
        )
        assert LedgerRecord.from_json(record.to_json()) == record

    def test_a_record_of_an_item_copies_the_item_and_stamps_utc(self) -> None:
        """LedgerRecord.of takes the item's fields and writes ts as UTC with a Z."""
        item = Item(RECORD.key, "spring", "acct001", "20", Action.RETWEET, "j.csv", 2)
        at = datetime(2026, 11, 26, 3, 0, tzinfo=timezone(timedelta(hours=2)))
        record = LedgerRecord.of(
            item, run="run-1", user_id="1001", at=at, status=Status.OK, retweeted=True,
            http=200, attempts=1,
        )  # fmt: skip
        assert record == replace(RECORD, ts="2026-11-26T01:00:00.000Z")

    @pytest.mark.parametrize(
        "line",
        ["[]", '{"schema":2}', '{"schema":1,"ts":"t"}', '{"schema":1', "\x00\x00"],
    )
    def test_unreadable_lines_raise_value_error(self, line: str) -> None:
        """Lines of another schema, missing fields or broken JSON raise ValueError."""
        with pytest.raises(ValueError, match=r"\S"):
            LedgerRecord.from_json(line)

    def test_error_kind_is_the_last_segment_of_the_type(self) -> None:
        """Problem type URIs group by their last path segment; local kinds stay as they are."""
        assert ErrorDetail("https://api.twitter.com/2/problems/usage-capped").kind == "usage-capped"
        assert ErrorDetail("network").kind == "network"


class TestWriter:
    def test_each_record_is_one_whole_line_on_disk_at_once(self, tmp_path: Path) -> None:
        """A written line can be read from the file before the writer is closed."""
        path = tmp_path / "ledger.jsonl"
        with LedgerWriter(path) as ledger:
            ledger.write(_record(0))
            assert path.read_text() == _record(0).to_json() + "\n"
            ledger.write(_record(1))
            assert path.read_text().splitlines() == [_record(0).to_json(), _record(1).to_json()]

    def test_fsync_is_grouped_by_lines_and_by_time_and_done_at_close(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """fsync runs every 100 lines, at the first write a second after the last, and on close."""
        synced_at: list[int] = []
        now = [0.0]
        ledger = LedgerWriter(tmp_path / "l.jsonl", clock=lambda: now[0])
        monkeypatch.setattr(os, "fsync", lambda fd: synced_at.append(ledger.lines))
        with ledger:
            synced_at.clear()  # opening a new ledger fsyncs its directory
            for n in range(250):
                ledger.write(_record(n))
            assert synced_at == [100, 200]
            now[0] = 0.9
            ledger.write(_record(250))
            assert synced_at == [100, 200]
            now[0] = 1.0
            ledger.write(_record(251))
            assert synced_at == [100, 200, 252]
            ledger.write(_record(252))
        assert synced_at == [100, 200, 252, 253]

    def test_secrets_are_never_written(self, tmp_path: Path) -> None:
        """A secret inside an error detail is masked before the line is written."""
        path = tmp_path / "l.jsonl"
        error = ErrorDetail("about:blank", "Unauthorized", 'token "tok-0123456789" rejected')
        with LedgerWriter(path, secrets=["tok-0123456789"]) as ledger:
            ledger.write(replace(RECORD, status=Status.ERROR, error=error))
        text = path.read_text()
        assert "tok-0123456789" not in text
        assert json.loads(text)["error"]["detail"] == 'token "[redacted]" rejected'

    @pytest.mark.parametrize("field", ["campaign", "account", "key"])
    def test_a_secret_in_any_free_text_field_is_masked(self, tmp_path: Path, field: str) -> None:
        """A secret pasted into a campaign, account name or item id never reaches the ledger,
        even after the same value was written clean before."""
        path = tmp_path / "l.jsonl"
        with LedgerWriter(path, secrets=["sekrit-0123456789"]) as ledger:
            ledger.write(RECORD)
            fields: dict[str, str] = {field: "x-sekrit-0123456789-y"}
            ledger.write(replace(RECORD, **fields))  # type: ignore[arg-type]
        first, second = path.read_text().splitlines()
        assert "sekrit" not in first + second
        assert json.loads(second)[field] == "x-[redacted]-y"

    def test_a_second_writer_is_refused_with_the_holder_named(self, tmp_path: Path) -> None:
        """While one writer holds the lock, another is refused with the holder's pid named."""
        path = tmp_path / "l.jsonl"
        with LedgerWriter(path), pytest.raises(LedgerLockedError) as caught:
            LedgerWriter(path).open()
        message = str(caught.value)
        assert message.startswith(f"{path}: ledger is locked by pid {os.getpid()} on ")
        assert "only one `bulkrt run` may write a ledger at a time" in message
        with LedgerWriter(path) as again:  # released on close
            again.write(RECORD)

    def test_the_lock_holds_across_processes_and_dies_with_its_holder(self, tmp_path: Path) -> None:
        """A lock held by another process refuses us; once that process is gone, we may write."""
        path = tmp_path / "l.jsonl"
        with subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from bulkrt.ledger.writer import LedgerWriter\n"
                f"w = LedgerWriter({str(path)!r}); w.open(); print('locked', flush=True)\n"
                "sys.stdin.read()",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        ) as holder:
            try:
                assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
                with pytest.raises(LedgerLockedError, match=f"locked by pid {holder.pid} on"):
                    LedgerWriter(path).open()
            finally:
                holder.kill()
        with LedgerWriter(path) as ledger:  # the stale .lock file does not block
            ledger.write(RECORD)
        assert path.read_text() == RECORD.to_json() + "\n"

    def test_a_missing_directory_is_a_ledger_error(self, tmp_path: Path) -> None:
        """A ledger in a directory that does not exist fails with a LedgerError naming it."""
        with pytest.raises(LedgerError, match="cannot create the lock"):
            LedgerWriter(tmp_path / "no" / "l.jsonl").open()


class TestResume:
    def test_ok_and_rejected_are_finished_error_is_not(self, tmp_path: Path) -> None:
        """Resume skips keys with an ok or rejected line and sends keys whose line is error."""
        path = tmp_path / "l.jsonl"
        with LedgerWriter(path) as ledger:
            ledger.write(_record(0, Status.OK))
            ledger.write(_record(1, Status.REJECTED))
            ledger.write(_record(2, Status.ERROR))
        finished = finished_keys(path)
        assert [_record(n).key in finished for n in range(4)] == [True, True, False, False]
        assert [finished.rejected(_record(n).key) for n in range(4)] == [False, True, False, False]

    def test_status_text_inside_other_fields_does_not_fool_the_fast_scan(
        self, tmp_path: Path
    ) -> None:
        """A key or campaign holding "status":"ok" text does not make an error line finished."""
        hostile = 'x","status":"ok","y":"'
        path = tmp_path / "l.jsonl"
        with LedgerWriter(path) as ledger:
            ledger.write(replace(RECORD, key=hostile, status=Status.ERROR))
            ledger.write(replace(RECORD, key="plain", campaign=hostile, status=Status.ERROR))
            ledger.write(replace(RECORD, key=hostile + "2", run=hostile, status=Status.OK))
        finished = finished_keys(path)
        assert [k in finished for k in (hostile, "plain", hostile + "2")] == [False, False, True]

    def test_a_missing_ledger_has_nothing_finished(self, tmp_path: Path) -> None:
        """The first run's ledger does not exist yet: nothing is finished."""
        assert len(finished_keys(tmp_path / "new.jsonl")) == 0

    def test_lines_in_another_json_shape_are_still_read(self, tmp_path: Path) -> None:
        """A line with other key order, spaces or \\u escapes is parsed in full, not missed."""
        record = replace(RECORD, key='["été","acct001","retweet","20",0]')
        data = json.loads(record.to_json())
        path = tmp_path / "l.jsonl"
        path.write_text(json.dumps(dict(reversed(data.items()))) + "\n")  # ASCII-escaped too
        assert record.key in finished_keys(path)

    def test_a_torn_last_line_is_skipped_and_the_run_resumes_after_it(self, tmp_path: Path) -> None:
        """After a crash mid-line, resume skips the torn line with a warning and appends cleanly."""
        path = tmp_path / "l.jsonl"
        path.write_text(
            _record(0).to_json() + "\n" + _record(1, Status.ERROR).to_json() + "\n"
            + _record(2).to_json()[:57]
        )  # fmt: skip
        with capture_logs() as logs:
            finished = finished_keys(path)
        assert [_record(n).key in finished for n in range(3)] == [True, False, False]
        assert [(e["event"], e["line"]) for e in logs] == [("ledger_torn_line_skipped", 3)]

        with capture_logs() as logs, LedgerWriter(path) as ledger:
            ledger.write(_record(1))
            ledger.write(_record(2))
        assert [e["event"] for e in logs] == ["ledger_torn_line_closed"]

        with capture_logs() as logs:
            records = list(read_ledger(path))
            finished = finished_keys(path)
        assert [(r.key, r.status) for r in records] == [
            (_record(0).key, Status.OK),
            (_record(1).key, Status.ERROR),
            (_record(1).key, Status.OK),
            (_record(2).key, Status.OK),
        ]
        assert [_record(n).key in finished for n in range(3)] == [True, True, True]
        assert [(e["event"], e["line"]) for e in logs] == [("ledger_line_skipped", 3)] * 2


#: seeds of the randomised resume-pass test; run many by hand with ``BULKRT_RESUME_SEEDS=3000``
RESUME_SEEDS = range(int(os.environ.get("BULKRT_RESUME_SEEDS", "40")))


def _as_line(item: Item, status: Status) -> LedgerRecord:
    """The ledger line of ``item`` ending ``status``."""
    return replace(
        RECORD,
        key=item.key,
        campaign=item.campaign,
        account=item.account,
        tweet_id=item.tweet_id,
        action=item.action,
        status=status,
    )


class TestPlanResume:
    @pytest.mark.parametrize("seed", RESUME_SEEDS)
    def test_the_two_passes_match_the_definitions(self, tmp_path: Path, seed: int) -> None:
        """Over random jobs (rows with an ``id`` and rows repeating their values without one)
        and ledgers, the scan riding on the validation pass counts exactly the finished items
        and the unfinished ones a later finished item on the same (account, Tweet) overtook
        (*superseded*); the second pass yields exactly the unfinished items and marks exactly
        those superseded. The scan over items whose keys are known agrees."""
        rng = random.Random(seed)
        job = tmp_path / "job.csv"
        lines = ["id,account,tweet_id,action"]
        for n in range(rng.randint(1, 40)):
            item_id = f"k{n}" if rng.random() < 0.3 else ""
            account = rng.choice(["acct001", "acct002"])
            lines.append(f"{item_id},{account},{20 + rng.randrange(4)},{rng.choice(list(Action))}")
        job.write_text("\n".join(lines) + "\n")
        accounts = {"acct001", "acct002"}
        with open_jobs([str(job)], fmt=None, campaign=None) as files:
            items = list(read_items(files, accounts, check_jobs(files, accounts)))
            done = {item.key for item in items if rng.random() < 0.5}
            path = tmp_path / "l.jsonl"
            with LedgerWriter(path) as ledger:
                for item in rng.sample(items, len(items)):  # a ledger's order is not the job's
                    if item.key in done:
                        ledger.write(_as_line(item, rng.choice(sorted(FINISHED))))
                    elif rng.random() < 0.5:
                        ledger.write(_as_line(item, Status.ERROR))
            finished = finished_keys(path)
            scan = ResumeScan(finished, path)
            check = check_jobs(files, accounts, on_row=scan.add_row)
            resume = scan.plan()
            remaining = resume.remaining(read_items(files, accounts, check))
            sent = [item.key for item in remaining]
        superseded = [
            item
            for n, item in enumerate(items)
            if item.key not in done
            and any(
                later.key in done
                and (later.account, later.tweet_id) == (item.account, item.tweet_id)
                for later in items[n + 1 :]
            )
        ]
        assert sent == [item.key for item in items if item.key not in done]
        assert remaining.superseded == {item.key for item in superseded}
        assert resume.superseded == dict(Counter(item.account for item in superseded))
        counts = Counter((item.account, item.action) for item in items)
        unfinished = Counter((i.account, i.action) for i in items if i.key not in done)
        assert resume.left(counts) == dict(unfinished)
        assert resume.done_per_account() == dict(Counter(i.account for i in items if i.key in done))
        by_items = plan_resume(items, finished, path)
        assert (by_items.done, by_items.superseded) == (resume.done, resume.superseded)

    def test_a_key_finished_for_another_row_is_an_input_error(self, tmp_path: Path) -> None:
        """A key the ledger finished for another row (an ``id`` reused) stops the resume with
        one problem at the row, naming both rows."""
        path = tmp_path / "l.jsonl"
        first = Item("launch", "spring", "acct001", "20", Action.RETWEET, "job.csv", 2)
        with LedgerWriter(path) as ledger:
            ledger.write(_as_line(first, Status.OK))
        reused = replace(first, tweet_id="21", line=3)
        with pytest.raises(InputError) as caught:
            plan_resume([reused], finished_keys(path), path)
        assert [str(p) for p in caught.value.problems] == [
            f"job.csv:3: id: 'launch' is already finished in the ledger {path} for campaign "
            "'spring', account acct001, retweet of Tweet 20; this row is campaign 'spring', "
            "account acct001, retweet of Tweet 21. Give each item its own id (or use another "
            "ledger)"
        ]
        assert plan_resume([first], finished_keys(path), path).superseded == {}


class _Opens:
    """Counts the times any process opens one file, with Linux's inotify: the kernel's own
    count, with no seam in bulkrt. (An open and the close after it are two events, so the
    kernel never merges two opens into one.)"""

    _OPEN, _CLOSE_NOWRITE, _HEADER = 0x20, 0x10, struct.Struct("iIII")

    def __init__(self, path: Path) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = self._libc.inotify_init1(os.O_NONBLOCK)
        watch = self._libc.inotify_add_watch(
            self._fd, os.fsencode(path), self._OPEN | self._CLOSE_NOWRITE
        )
        assert self._fd >= 0 and watch >= 0, os.strerror(ctypes.get_errno())

    def count(self) -> int:
        """The opens since the last call."""
        opens = 0
        while True:
            try:
                events = os.read(self._fd, 65536)
            except BlockingIOError:
                return opens
            at = 0
            while at < len(events):
                _, mask, _, name = self._HEADER.unpack_from(events, at)
                opens += bool(mask & self._OPEN)
                at += self._HEADER.size + name

    def close(self) -> None:
        os.close(self._fd)


def _accounts_file(directory: Path) -> Path:
    """An accounts file with one OAuth 1.0a account, acct001."""
    oauth1 = {
        "consumer_key": "ck",
        "consumer_secret": "cs-xxxxxxxx",
        "access_token": "1001-at-xxxxxxxx",
        "access_token_secret": "ats-xxxxxxxx",
    }
    path = directory / "accounts.json"
    path.write_text(json.dumps({"accounts": {"acct001": {"user_id": "1001", "oauth1": oauth1}}}))
    path.chmod(0o600)
    return path


def test_a_resume_reads_the_job_file_twice(tmp_path: Path) -> None:
    """A resumed run reads its job file twice (the validation pass, which also plans the resume,
    and the pass that sends), as its dry run does: the first row, overtaken by the finished undo
    after it, is recorded ``superseded``; nothing is sent (the API base is a closed port)."""
    accounts = _accounts_file(tmp_path)
    rows = [("20", "retweet"), ("20", "undo"), ("21", "retweet")]
    job = tmp_path / "job.csv"
    job.write_text("account,tweet_id,action\n" + "".join(f"acct001,{t},{a}\n" for t, a in rows))
    path = tmp_path / "l.jsonl"
    first, undo, other = (
        Item(derived_key("job", "acct001", action, tweet, 0), "job", "acct001", tweet,
             Action(action), "job.csv", line)
        for line, (tweet, action) in enumerate(rows, start=2)
    )  # fmt: skip
    with LedgerWriter(path) as ledger:
        ledger.write(_as_line(first, Status.ERROR))
        ledger.write(_as_line(undo, Status.OK))
        ledger.write(_as_line(other, Status.OK))
    args = ["run", str(job), "--accounts", str(accounts), "--ledger", str(path)]
    args += ["--api-base", "http://127.0.0.1:9", "--no-progress"]
    opens = _Opens(job)
    try:
        planned = CliRunner().invoke(main, [*args, "--dry-run"])
        assert planned.exit_code == 0, planned.output
        assert "1 superseded" in planned.output
        assert opens.count() == 2
        resumed = CliRunner().invoke(main, args)
        assert resumed.exit_code == 0, resumed.output
        assert opens.count() == 2
    finally:
        opens.close()
    *_, last = read_ledger(path)
    assert (last.key, last.status) == (first.key, Status.SUPERSEDED)
    assert len(list(read_ledger(path))) == 4


def test_a_line_written_between_the_scan_and_the_lock_is_seen(tmp_path: Path) -> None:
    """The finished keys are read before the ledger's lock (bad input takes none); a line
    another run wrote in between is found under the lock, and its item is not sent again. The
    job comes through a FIFO, so the run is held after its read of the ledger until the other
    run's line is in."""
    accounts = _accounts_file(tmp_path)
    path = tmp_path / "l.jsonl"
    path.write_bytes(b"")
    job = tmp_path / "job.csv"
    os.mkfifo(job)
    done = Item("launch", "job", "acct001", "20", Action.RETWEET, "job.csv", 2)

    def other_run_then_job() -> None:
        with job.open("wb") as fifo:  # returns once the run opens the job: the ledger is read
            with LedgerWriter(path) as ledger:
                ledger.write(_as_line(done, Status.OK))
            fifo.write(b"id,account,tweet_id,action\nlaunch,acct001,20,retweet\n")

    feeder = threading.Thread(target=other_run_then_job)
    feeder.start()
    args = ["run", str(job), "--accounts", str(accounts), "--ledger", str(path)]
    result = CliRunner().invoke(main, [*args, "--api-base", "http://127.0.0.1:9", "--no-progress"])
    feeder.join()
    assert result.exit_code == 0, result.output
    assert [(r.key, r.status) for r in read_ledger(path)] == [("launch", Status.OK)]


def test_the_lock_finds_the_ledger_as_its_keys_were_read(tmp_path: Path) -> None:
    """The stamp of the finished keys' read equals what the writer's lock finds while nothing
    was written in between (also with a torn last line, which the writer then ends), and
    differs once a line was; no ledger on both sides is the same too."""
    path = tmp_path / "l.jsonl"
    keys = finished_keys(path)
    with LedgerWriter(path) as ledger:
        assert ledger.found == keys.stamp is None
        ledger.write(_record(1))
    keys = finished_keys(path)
    with LedgerWriter(path) as ledger:
        assert ledger.found == keys.stamp is not None
    with path.open("ab") as torn:
        torn.write(b'{"schema":1,"ts"')
    keys = finished_keys(path)
    with LedgerWriter(path) as ledger:
        assert ledger.found == keys.stamp
        ledger.write(_record(2))
    with LedgerWriter(path) as ledger:
        assert ledger.found != keys.stamp


def test_the_journal_docstring_examples_hold() -> None:
    """The journal's examples (its fold of events, a sent key read back) run as written."""
    import doctest

    import bulkrt.ledger.journal

    failed, tried = doctest.testmod(bulkrt.ledger.journal)
    assert tried and not failed


def test_the_journal_settles_origins_for_rollback(tmp_path: Path) -> None:
    """The journal gives rollback the first settled origin of each pair, and a pair whose only
    attempt may have been applied and was never settled (then refused) as undecided."""
    from bulkrt.core.attribution import Origin
    from bulkrt.ledger.journal import JournalEvent, SentJournal, read_origins

    ledger = tmp_path / "l.jsonl"
    journal = SentJournal(ledger)
    journal.open(finished=set())
    made = Item("k1", "c", "acme", "20", Action.RETWEET, "j.csv", 2)
    owner = Item("k2", "c", "acme", "21", Action.RETWEET, "j.csv", 3)
    refused = Item("k3", "c", "acme", "22", Action.RETWEET, "j.csv", 4)
    for item, events in (
        (made, [JournalEvent.SENT, JournalEvent.MAYBE, JournalEvent.MADE]),
        (owner, [JournalEvent.SENT, JournalEvent.NONE, JournalEvent.SENT, JournalEvent.OWNER]),
        (refused, [JournalEvent.SENT, JournalEvent.MAYBE, JournalEvent.NONE]),
    ):
        for event in events:
            journal.record(item, event)
    journal.close()
    with (tmp_path / "l.jsonl.sent").open("a") as torn:
        torn.write('{"e":"made","key":"k4","campa')  # a power cut mid-line
    assert read_origins(ledger) == {
        ("c", "acme", "20"): Origin.CAMPAIGN,
        ("c", "acme", "21"): Origin.OWNER,
        ("c", "acme", "22"): Origin.UNDECIDED,
    }
    again = SentJournal(ledger)
    again.open(finished={"k1"})
    assert again.evidence("k2").owner and again.evidence("k3").possible
    assert again.evidence("k1") == again.evidence("unknown")  # finished keys are not loaded
    again.close()


async def test_a_batch_the_flusher_took_is_written_when_the_run_ends_meanwhile(
    tmp_path: Path,
) -> None:
    """Settled origins queued, the flusher woken, and the run ending before it writes: the
    batch it took is still written (once lost, a resume after ledger damage read the campaign's
    retweets as undecidable)."""
    import anyio.lowlevel

    from bulkrt.core.attribution import Origin
    from bulkrt.ledger.journal import JournalEvent, SentJournal, read_origins

    ledger = tmp_path / "l.jsonl"
    journal = SentJournal(ledger)
    journal.open(finished=set())
    made = Item("k1", "c", "acme", "20", Action.RETWEET, "j.csv", 2)
    async with anyio.create_task_group() as run:
        run.start_soon(journal.flush_forever)
        await anyio.lowlevel.checkpoint()  # the flusher waits for its kick
        journal.record(made, JournalEvent.MADE)
        journal.flush()
        run.cancel_scope.cancel()  # the run ends before the flusher's next turn
    journal.close()
    assert read_origins(ledger) == {("c", "acme", "20"): Origin.CAMPAIGN}
