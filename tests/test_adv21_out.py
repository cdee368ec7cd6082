"""Findings of the adversarial pass adv21 on what a command reads and writes around a run: a
standard error that cannot be written, `expand`'s lists, and rate-limit resets that come from
another clock or another process. Each runs the real CLI (or the pure core a run uses) and checks
what the operator sees: exit code, message, ledger and what the sandbox recorded."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate
from pathlib import Path

import anyio
import pytest

from bulkrt.commands.sandbox import write_accounts_file
from bulkrt.core import waits
from bulkrt.core.items import Action, Item, Status
from bulkrt.core.limiter import Margins
from bulkrt.core.outcome import Outcome, classify
from bulkrt.core.retry_policy import ParkPolicy
from bulkrt.core.scheduler import AccountState, Dispatch, EventKind, Scheduler, Wait
from bulkrt.core.tiers import limit_model
from bulkrt.sandbox import OffsetClock
from tests.test_operator_mistakes3 import ACCOUNTS, CAMPAIGN, LEDGER_LINE, bulkrt, files
from tests.test_run import MakeWorld, fork_cli

#: how a standard stream is broken, as the shell would do it: a full disk (``2>/dev/full``), a
#: pipe whose reader left (``2>&1 | head -2`` once head is done), a closed descriptor (``2>&-``)
BROKEN = ("full", "reader-left", "closed")


@contextmanager
def broken_stderr(kind: str, args: list[str]) -> Iterator[tuple[list[str], int | None]]:
    """``args`` to run and the descriptor to give as their stderr, broken as ``kind`` says."""
    if kind == "full":
        with open("/dev/full", "wb") as full:
            yield args, full.fileno()
    elif kind == "reader-left":
        read, write = os.pipe()
        os.close(read)  # the reader is gone before the command writes a line
        try:
            yield args, write
        finally:
            os.close(write)
    else:
        yield ["sh", "-c", 'exec "$@" 2>&-', "sh", *args], None


#: the exit code a command whose own code is 0 ends with, per broken stderr
EXPECTED = {"full": 74, "reader-left": 0, "closed": 74}


class TestStderrCannotBeWritten:
    """Finding S1: standard error on a full disk, closed, or a pipe whose reader left."""

    @pytest.mark.parametrize("kind", BROKEN)
    async def test_a_run_sends_everything_and_never_exits_1(
        self, make_world: MakeWorld, kind: str
    ) -> None:
        """`run --json` with a broken stderr sends the whole job, writes every ledger line (and
        no log line into a file of the run), prints its summary on stdout and exits 0 when the
        reader left, 74 when stderr could not be written (before: exit 1, nothing sent)."""
        world = await make_world()
        job = world.job(CAMPAIGN)
        with broken_stderr(kind, world.run_args(job, "--json")) as (args, stderr):
            answer = await anyio.run_process(
                args, stdout=subprocess.PIPE, stderr=stderr, check=False
            )
        assert answer.returncode == EXPECTED[kind]
        assert json.loads(answer.stdout)["this_run"]["ok"] == 2
        assert sorted((line["account"], line["status"]) for line in world.lines()) == [
            ("acct001", "ok"), ("acct002", "ok")
        ]  # fmt: skip
        assert world.sandbox.state.requests == 2
        again = await world.run(job)
        assert again.returncode == 0, again.stderr.decode()
        assert world.sandbox.state.requests == 2

    @pytest.mark.parametrize("kind", BROKEN)
    def test_validate_exits_2_or_74_never_1(self, tmp_path: Path, kind: str) -> None:
        """`validate` of a missing job with a broken stderr exits 2 when the reader left and 74
        when stderr could not be written (before: exit 1)."""
        files(tmp_path, acc_json=ACCOUNTS)
        command = [sys.executable, "-m", "bulkrt", "validate", "nosuch.csv", "--accounts",
                   "acc.json"]  # fmt: skip
        with broken_stderr(kind, command) as (args, stderr):
            answer = subprocess.run(
                args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=stderr, timeout=60, check=False
            )
        assert answer.returncode == {"full": 74, "reader-left": 2, "closed": 74}[kind]

    def test_one_pipe_for_both_whose_reader_left_keeps_the_exit_code(self, tmp_path: Path) -> None:
        """`status L 2>&1 | head -0`: stdout and stderr on one pipe whose reader left; the
        command ends with its own exit code (2 for a missing ledger), not 1."""
        read, write = os.pipe()
        os.close(read)
        try:
            answer = subprocess.run(
                [sys.executable, "-m", "bulkrt", "status", "nosuch.jsonl"],
                cwd=tmp_path, stdout=write, stderr=write, timeout=60, check=False,
            )  # fmt: skip
        finally:
            os.close(write)
        assert answer.returncode == 2


class TestStdoutClosed:
    """A standard output closed before the command started (``>&-``)."""

    def test_it_is_output_that_could_not_be_written(self, tmp_path: Path) -> None:
        """`status L >&-` exits 74 saying its output could not be written (Bad file descriptor)
        and that its own exit code was 0 (before: exit 0, having printed nothing)."""
        files(tmp_path, ledger_jsonl=LEDGER_LINE)
        answer = subprocess.run(
            ["sh", "-c", 'exec "$@" >&-', "sh", sys.executable, "-m", "bulkrt", "status",
             "ledger.jsonl"],
            cwd=tmp_path, stderr=subprocess.PIPE, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert answer.returncode == 74, answer.stderr
        assert answer.stderr == (
            "bulkrt: standard output could not be written (Bad file descriptor): what the "
            "command printed is incomplete; its own exit code was 0, exit 74 instead\n"
        )


def job_rows(path: Path) -> list[tuple[str, str]]:
    """The (account, tweet_id) of each row of a CSV job `expand` wrote."""
    with path.open(newline="") as stream:
        return [(row["account"], row["tweet_id"]) for row in csv.DictReader(stream)]


class TestExpandLists:
    """Findings X1 and X2: `expand --tweets`/`--accounts` values that read as lists."""

    def test_a_list_too_long_for_a_file_name_is_read_as_a_list(self, tmp_path: Path) -> None:
        """13 real 19-digit Tweet IDs (259 characters) and 40 account names (more than 255
        characters, no file could be named so) are lists: exit 0, 520 rows, and --out is not
        blamed (before: "cannot write OUT: File name too long", exit 2)."""
        ids = [str(1861359704022656025 + n) for n in range(13)]
        names = [f"account{n:03d}" for n in range(1, 41)]
        assert len(",".join(ids)) > 255 and len(",".join(names)) > 255
        answer = bulkrt("expand", "--accounts", ",".join(names), "--tweets", ",".join(ids),
                        "--campaign", "kw", "--out", "job.csv", cwd=tmp_path)  # fmt: skip
        assert answer.returncode == 0, answer.stderr
        assert "cannot write" not in answer.stderr
        assert job_rows(tmp_path / "job.csv") == [(a, t) for t in ids for a in names]

    def test_a_value_that_is_an_entry_and_a_file_here_is_the_entry_with_a_warning(
        self, tmp_path: Path
    ) -> None:
        """With files named `20` and `acct001` in the working directory, `--accounts acct001
        --tweets 20` targets account acct001 and Tweet 20 as typed, and warns once for each
        that a file of that name was not read and how to read it (before: the files were read,
        silently: Tweet 99999 and account acctX)."""
        files(tmp_path, **{"20": "99999\n", "acct001": "acctX\n"})
        answer = bulkrt("expand", "--accounts", "acct001", "--tweets", "20", "--campaign", "z",
                        "--out", "a.csv", cwd=tmp_path)  # fmt: skip
        assert answer.returncode == 0, answer.stderr
        assert job_rows(tmp_path / "a.csv") == [("acct001", "20")]
        for option, value in (("--accounts", "acct001"), ("--tweets", "20")):
            assert answer.stderr.count(f"warning: {option} {value}: ") == 1
            assert f"a file named {value} is here too; write ./{value} to read it" in answer.stderr

    def test_a_path_to_such_a_file_reads_the_file(self, tmp_path: Path) -> None:
        """`--accounts ./acct001 --tweets ./20` read the files, with no warning."""
        files(tmp_path, **{"20": "99999\n", "acct001": "acctX\n"})
        answer = bulkrt("expand", "--accounts", "./acct001", "--tweets", "./20", "--campaign",
                        "z", "--out", "b.csv", cwd=tmp_path)  # fmt: skip
        assert answer.returncode == 0, answer.stderr
        assert "warning" not in answer.stderr
        assert job_rows(tmp_path / "b.csv") == [("acctX", "99999")]

    def test_a_value_that_is_no_entry_still_reads_the_file(self, tmp_path: Path) -> None:
        """A file named `spring` given as --tweets (no Tweet ID) is read, with no warning."""
        files(tmp_path, spring="20\n21\n")
        answer = bulkrt("expand", "--accounts", "a1", "--tweets", "spring", "--campaign", "z",
                        "--out", "c.csv", cwd=tmp_path)  # fmt: skip
        assert answer.returncode == 0, answer.stderr
        assert "warning" not in answer.stderr
        assert job_rows(tmp_path / "c.csv") == [("a1", "20"), ("a1", "21")]


#: the body of a retweet's 200
OK = b'{"data":{"retweeted":true}}'
#: the body of a 429
TOO_MANY = b'{"title":"Too Many Requests","type":"about:blank","status":429,"detail":"Too Many"}'
#: a fixed moment on this machine's clock for the pure core's tests
T0 = 1_800_000_000.0


def answered(
    http: int, remaining: int, reset: float, date: float | None = None, body: bytes = OK
) -> Outcome:
    """An answer of the API with its rate-limit headers (and a ``Date`` header, if given)."""
    headers = {
        "x-rate-limit-limit": "5",
        "x-rate-limit-remaining": str(remaining),
        "x-rate-limit-reset": str(int(reset)),
    }
    if date is not None:
        headers["date"] = formatdate(date, usegmt=True)
    kind = "application/json" if http == 200 else "application/problem+json"
    return classify(Action.RETWEET, http, headers, body, kind)


def spend_window(scheduler: Scheduler, ahead: float, date_ahead: float | None) -> float:
    """Send the 5 requests of one window, each answered 200 with a reset ``ahead`` s after its
    answer (and a Date header ``date_ahead`` s ahead of this clock); when the last was answered."""
    now, left = T0, 5
    while left:
        step = scheduler.next(now)
        assert isinstance(step, Dispatch), step
        now += 0.1
        left -= 1
        date = None if date_ahead is None else now + date_ahead
        scheduler.on_response(step.ticket, now, answered(200, left, now + ahead, date))
    return now


class TestResetFromAnotherClock:
    """Finding P2: a 200's reset far ahead of this machine's clock (the API's clock ahead)."""

    @pytest.mark.parametrize(
        ("date_ahead", "says"),
        [
            (8000.0, "the answer's Date header is 8000 s ahead of this machine's clock"),
            (0.0, "the answer's Date header agrees with this machine's clock"),
            (None, "no Date header"),
        ],
        ids=["date-ahead", "date-agrees", "no-date"],
    )
    def test_it_is_not_waited_for_and_the_reason_names_the_clocks(
        self, date_ahead: float | None, says: str
    ) -> None:
        """With --window 2, a spent window whose reset lies 8000 s ahead (beyond two windows,
        at least 30 minutes) holds the account for one window, not 8000 s; a
        clock_skew_suspected event says so and what the Date header tells of the clocks
        (before: a wait of 2 h 14 min)."""
        scheduler = Scheduler(limit_model("basic", limit=5, window=2), concurrency=4)
        for n in range(6):
            scheduler.add(Item(f"k{n}", "c", "a", str(100 + n), Action.RETWEET, "job.csv", n))
        last = spend_window(scheduler, 8000.0, date_ahead)
        step = scheduler.next(last)
        assert isinstance(step, Wait) and step.until <= last + 2.0 + Margins().reset
        assert isinstance(scheduler.next(step.until), Dispatch)
        (event, *_) = [e for e in scheduler.drain_events() if e.kind is EventKind.SKEW]
        text = waits.reason(event)
        assert "8000 s ahead of this machine's clock" in text
        assert "not waited for" in text
        assert says in text

    def test_a_plausible_reset_is_still_waited_for(self) -> None:
        """A spent window whose reset lies 20 minutes ahead (within two windows of at least
        30 minutes) is waited for in full, as the API says, with no skew event."""
        scheduler = Scheduler(limit_model("basic", limit=5, window=2), concurrency=4)
        for n in range(6):
            scheduler.add(Item(f"k{n}", "c", "a", str(100 + n), Action.RETWEET, "job.csv", n))
        last = spend_window(scheduler, 1200.0, None)
        step = scheduler.next(last)
        assert isinstance(step, Wait) and step.until >= last + 1200.0
        assert not [e for e in scheduler.drain_events() if e.kind is EventKind.SKEW]

    async def test_a_run_on_a_sandbox_hours_ahead_ends_in_seconds(
        self, make_world: MakeWorld
    ) -> None:
        """A sandbox whose clock is 8000 s ahead of this machine's (every reset it gives lies
        that far ahead): 12 retweets of one OAuth 2.0 account at 5 per 2 s end ok within a
        minute, with no 429, and the log names the reset not waited for (before: the run
        waited 2 h 14 min after its first window)."""
        world = await make_world()
        assert isinstance(world.sandbox.clock, OffsetClock)
        world.sandbox.clock.advance(8000)
        expires = world.sandbox.clock.now() + world.sandbox.config.token_ttl
        write_accounts_file(
            world.accounts, world.sandbox.state.world.accounts_file(expires_at=expires)
        )
        job = world.job([("acct002", str(700 + n), "retweet") for n in range(12)])
        with anyio.fail_after(60):
            answer = await world.run(job)
        err = answer.stderr.decode()
        assert answer.returncode == 0, err
        assert [line["status"] for line in world.lines()] == ["ok"] * 12
        assert world.retweets("acct002") == {str(700 + n) for n in range(12)}
        assert "429" not in world.sandbox.state.stats()["by_status"]
        assert err.count("clock_skew_suspected") == 1  # once, not once an answer
        assert "ahead of this machine's clock, beyond what a window takes: not waited for" in err


def limited(reset: float) -> Outcome:
    """A 429 its headers explain: nothing remaining, the window resets at ``reset``."""
    return answered(429, 0, reset, body=TOO_MANY)


class TestAnotherProcessOnTheAccount:
    """Finding P1: a second run on the same accounts takes each new window first."""

    def test_a_429_in_the_window_after_the_wait_waits_for_that_reset(self) -> None:
        """A 429 (reset T0+10) is waited for; the request sent after it meets another 429 whose
        reset is later (T0+20: another process took the new window): the account waits for
        that reset too, not parked as "a hidden limit", and both waits say another process
        may be using the account and how to share its budget; then the item goes and ends ok."""
        scheduler = Scheduler(
            limit_model("basic", limit=5, window=10),
            concurrency=4,
            park=ParkPolicy(base=120.0, maximum=3600.0, jitter=0.0),
        )
        scheduler.add(Item("k0", "c", "a", "100", Action.RETWEET, "job.csv", 1))
        step = scheduler.next(T0)
        assert isinstance(step, Dispatch)
        scheduler.on_response(step.ticket, T0 + 0.5, limited(T0 + 10))
        first = scheduler.next(T0 + 0.5)
        assert isinstance(first, Wait) and first.until == T0 + 12
        step = scheduler.next(first.until)
        assert isinstance(step, Dispatch)
        scheduler.on_response(step.ticket, T0 + 12.5, limited(T0 + 20))
        assert scheduler.state("a", T0 + 13) is not AccountState.PARKED
        second = scheduler.next(T0 + 13)
        assert isinstance(second, Wait) and second.until == T0 + 22  # not a 120 s park
        step = scheduler.next(second.until)
        assert isinstance(step, Dispatch)
        (done,) = scheduler.on_response(step.ticket, T0 + 22.5, answered(200, 4, T0 + 32))
        assert done.status is Status.OK
        events = scheduler.drain_events()
        assert [e.kind for e in events] == [EventKind.RATE_LIMITED] * 2
        for event in events:
            assert "another process may be using this account" in waits.reason(event)
            assert "--redis" in waits.reason(event)

    def test_a_429_naming_the_reset_already_waited_for_still_parks(self) -> None:
        """A 429 after the wait that names the same reset (the API says the window waited for
        is still on: a limit its headers do not explain) parks the account as before."""
        scheduler = Scheduler(
            limit_model("basic", limit=5, window=10),
            concurrency=4,
            park=ParkPolicy(base=120.0, maximum=3600.0, jitter=0.0),
        )
        scheduler.add(Item("k0", "c", "a", "100", Action.RETWEET, "job.csv", 1))
        step = scheduler.next(T0)
        assert isinstance(step, Dispatch)
        scheduler.on_response(step.ticket, T0 + 0.5, limited(T0 + 10))
        step = scheduler.next(T0 + 12)
        assert isinstance(step, Dispatch)
        scheduler.on_response(step.ticket, T0 + 12.5, limited(T0 + 10))
        assert scheduler.state("a", T0 + 13) is AccountState.PARKED

    async def test_two_runs_on_the_same_accounts_park_nothing(self, make_world: MakeWorld) -> None:
        """Two runs at once on the same two accounts (different jobs and ledgers, no --redis),
        5 per 2 s: both end ok with every item; no account is parked for a hidden limit; a 429
        the second run meets says another process may be using the account (before: its
        accounts were parked, for parks that grow)."""
        world = await make_world()
        accounts = ["acct001", "acct002"]
        first = world.job([(a, str(800 + n), "retweet") for n in range(15) for a in accounts])
        second = world.job(
            [(a, str(900 + n), "retweet") for n in range(15) for a in accounts], name="other.csv"
        )
        other_ledger = str(world.dir / "other.jsonl")
        args = [part if part != str(world.ledger) else other_ledger
                for part in world.run_args(second)]  # fmt: skip
        with anyio.fail_after(90):
            async with fork_cli(world.run_args(first)) as one:
                await anyio.sleep(0.3)
                async with fork_cli(args) as two:
                    codes = (await one.wait(), await two.wait())
        errs = one.stderr().decode() + two.stderr().decode()
        assert codes == (0, 0), errs
        assert "account_parked" not in errs
        assert all(world.retweets(a) >= {str(t) for t in range(800, 815)} | {
            str(t) for t in range(900, 915)} for a in accounts)  # fmt: skip
        # the premise: the runs met each other's use (429s), and some account waited again after
        # a wait (a 429 in the window after it, naming a later reset: waited for, not parked)
        assert "429" in world.sandbox.state.stats()["by_status"]
        assert any(waited_twice(run.stderr().decode()) for run in (one, two)), errs
        assert "another process may be using this account" in errs


def waited_twice(log: str) -> bool:
    """Whether one process's log shows an account that waited for a rate limit twice (a 429
    after its first wait: its premise of "the window after a wait was taken too")."""
    waits = Counter(re.findall(r"account_rate_limited\s+account=(\S+)", log))
    return max(waits.values(), default=0) >= 2
