"""Operator mistakes an adversarial operator found (adv19): each runs the real CLI against the
sandbox and checks what the operator sees (exit code, the message naming the file, field and
account) and what the sandbox recorded (nothing sent when the command refuses)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import anyio
import pytest

from tests.test_mistakes import bulkrt  # the real CLI, forked (never more than 60 s)
from tests.test_run import MakeWorld, World, both_modes

CAMPAIGN = [("acct001", "3001", "retweet"), ("acct002", "3001", "retweet")]


def permuted_accounts(world: World) -> Path:
    """Another accounts file with the same names, acct001's and acct002's entries swapped (each
    entry keeps its own user id and credentials): like a staging and a production file."""
    document = json.loads(world.accounts.read_text())
    accounts = document["accounts"]
    accounts["acct001"], accounts["acct002"] = accounts["acct002"], accounts["acct001"]
    other = world.dir / "other-accounts.json"
    other.write_text(json.dumps(document))
    other.chmod(0o600)
    return other


def dev_null_lock() -> bool:
    """Whether a lock file sits beside /dev/null (a run given it as its ledger made one)."""
    return Path("/dev/null.lock").exists()


async def run(world: World, job: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    with anyio.fail_after(60):  # a command that blocks (on a FIFO) fails the test
        done = await world.run(job, *extra)
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


class TestAccountsFileOfAnotherLedger:
    """Finding 1: the ledger's user ids must be the accounts file's for the same names."""

    @both_modes
    async def test_a_resume_with_another_accounts_file_exits_2_and_sends_nothing(
        self, make_world: MakeWorld
    ) -> None:
        """A ledger whose lines give acct001 and acct002 other user ids than the accounts file
        does is refused before sending: exit 2 naming both accounts, both user ids, the ledger
        and the accounts file; the sandbox gets no request and the ledger is unchanged."""
        world = await make_world()
        job = world.job(CAMPAIGN)
        first = await run(world, job)
        assert first.returncode == 0, first.stderr
        other = permuted_accounts(world)
        before, sent = world.ledger.read_bytes(), world.sandbox.state.requests
        again = await run(world, job, "--accounts", str(other))
        assert again.returncode == 2, again.stderr
        one, two = world.user_id("acct001"), world.user_id("acct002")
        for name, then, now in (("acct001", one, two), ("acct002", two, one)):
            assert (
                f"accounts.{name}: the ledger {world.ledger} holds lines for account {name} as "
                f"user id {then}; this accounts file gives {name} user id {now}"
            ) in again.stderr
        assert f"{other}: accounts.acct001" in again.stderr
        assert "nothing was sent" in again.stderr
        assert world.sandbox.state.requests == sent
        assert world.ledger.read_bytes() == before

    async def test_the_undo_run_with_another_accounts_file_is_refused(
        self, make_world: MakeWorld
    ) -> None:
        """The undo job of a rollback, run with another accounts file of the same names, exits
        2 and undoes nothing: the campaign's retweets stay where the campaign made them."""
        world = await make_world()
        first = await run(world, world.job(CAMPAIGN))
        assert first.returncode == 0, first.stderr
        undo = world.dir / "undo.csv"
        rolled = bulkrt("rollback", str(world.ledger), "--out", str(undo), cwd=world.dir)
        assert rolled.returncode == 0, rolled.stderr
        sent = world.sandbox.state.requests
        done = await run(world, undo, "--accounts", str(permuted_accounts(world)))
        assert done.returncode == 2, done.stderr
        assert "holds lines for account acct001 as user id" in done.stderr
        assert world.sandbox.state.requests == sent
        assert world.retweets("acct001") == world.retweets("acct002") == {"3001"}

    async def test_validate_with_the_ledger_reports_the_disagreement(
        self, make_world: MakeWorld
    ) -> None:
        """`validate --ledger` lists the same disagreement (exit 2), with the job's own
        problems."""
        world = await make_world()
        job = world.job(CAMPAIGN)
        assert (await run(world, job)).returncode == 0
        other = permuted_accounts(world)
        bad = world.job([*CAMPAIGN, ("nosuch", "1", "retweet")], name="bad.csv")
        checked = bulkrt(
            "validate", str(bad), "--accounts", str(other), "--ledger", str(world.ledger),
            cwd=world.dir,
        )  # fmt: skip
        assert checked.returncode == 2
        assert "unknown account 'nosuch'" in checked.stderr
        assert "holds lines for account acct001 as user id" in checked.stderr
        assert "holds lines for account acct002 as user id" in checked.stderr

    async def test_the_same_accounts_file_resumes_as_ever(self, make_world: MakeWorld) -> None:
        """With the accounts file of the ledger's runs, a re-run is no problem: exit 0, no
        request (the check refuses only a disagreement)."""
        world = await make_world()
        job = world.job(CAMPAIGN)
        assert (await run(world, job)).returncode == 0
        sent = world.sandbox.state.requests
        again = await run(world, job)
        assert again.returncode == 0, again.stderr
        assert world.sandbox.state.requests == sent


class TestNotARegularFile:
    """Finding 2: a ledger or output that is a device or a FIFO is refused before anything."""

    async def test_run_with_the_ledger_dev_null_exits_2_and_sends_nothing(
        self, make_world: MakeWorld
    ) -> None:
        """``--ledger /dev/null`` exits 2 naming it a character device; nothing is sent and no
        lock or journal is created beside it."""
        world = await make_world()
        lock_before = dev_null_lock()
        done = await run(world, world.job(CAMPAIGN), "--ledger", "/dev/null")
        assert done.returncode == 2, done.stderr
        assert "--ledger /dev/null: is a character device, not a regular file" in done.stderr
        assert world.sandbox.state.requests == 0
        assert dev_null_lock() == lock_before

    async def test_a_fifo_as_ledger_is_refused_by_every_command_without_hanging(
        self, make_world: MakeWorld
    ) -> None:
        """A FIFO given as the ledger to run, validate, status, report and rollback exits 2 at
        once (no command blocks on opening it); run sends nothing."""
        world = await make_world()
        fifo = world.dir / "fifo.jsonl"
        os.mkfifo(fifo)
        job = world.job(CAMPAIGN)
        done = await run(world, job, "--ledger", str(fifo))
        assert done.returncode == 2, done.stderr
        assert "is a FIFO (named pipe), not a regular file" in done.stderr
        for args in (
            ("validate", str(job), "--accounts", str(world.accounts), "--ledger", str(fifo)),
            ("status", str(fifo)),
            ("report", str(fifo), "--html", str(world.dir / "r.html")),
            ("rollback", str(fifo), "--out", str(world.dir / "u.csv")),
        ):
            answer = bulkrt(*args, cwd=world.dir)
            assert answer.returncode == 2, (args, answer.stderr)
            assert "FIFO" in answer.stderr, (args, answer.stderr)
        assert world.sandbox.state.requests == 0
        assert not (world.dir / "u.csv").exists() and not (world.dir / "r.html").exists()

    def test_an_output_that_is_a_device_or_fifo_is_refused_even_with_force(
        self, tmp_path: Path
    ) -> None:
        """`rollback --out` a character device or a FIFO exits 2 even with --force, and the
        FIFO is not opened (the command returns)."""
        ledger = tmp_path / "ledger.jsonl"
        ledger.write_text(
            '{"schema":1,"ts":"2026-11-26T01:00:00.000Z","run":"r1","key":"k1","campaign":"s",'
            '"account":"acct001","user_id":"1001","tweet_id":"20","action":"retweet",'
            '"status":"ok","retweeted":true,"preexisting":false,"http":200,"error":null,'
            '"attempts":1}\n'
        )
        fifo = tmp_path / "out.csv"
        os.mkfifo(fifo)
        for out, what in (("/dev/null", "a character device"), (str(fifo), "a FIFO")):
            answer = bulkrt("rollback", str(ledger), "--out", out, "--force", cwd=tmp_path)
            assert answer.returncode == 2, answer.stderr
            assert f"--out {out} is {what}" in answer.stderr


class TestRollbackLoop:
    """Finding 5: ``rollback --force && run undo`` works as a retry loop."""

    async def test_a_rollback_with_nothing_to_undo_keeps_the_earlier_undo_job(
        self, make_world: MakeWorld
    ) -> None:
        """Once every undo is recorded, `rollback --force` exits 0 saying nothing to undo and
        that it kept the earlier undo job byte for byte; running that job again exits 0 and
        sends nothing."""
        world = await make_world()
        assert (await run(world, world.job(CAMPAIGN))).returncode == 0
        undo = world.dir / "undo.csv"
        for _ in range(2):
            rolled = bulkrt("rollback", str(world.ledger), "--out", str(undo), "--force",
                            cwd=world.dir)  # fmt: skip
            assert rolled.returncode == 0, rolled.stderr
            kept = undo.read_bytes()
            done = await run(world, undo)
            assert done.returncode == 0, done.stderr
        assert "nothing to undo" in rolled.stdout.splitlines()
        assert f"the existing {undo} was kept as it was (not replaced)" in rolled.stdout
        assert undo.read_bytes() == kept and b"undo" in kept
        assert world.retweets("acct001") == world.retweets("acct002") == set()

    def test_nothing_to_undo_and_no_earlier_file_writes_nothing(self, tmp_path: Path) -> None:
        """With nothing to undo and no file at --out, rollback exits 0 and writes no file."""
        ledger = tmp_path / "ledger.jsonl"
        ledger.write_text(
            '{"schema":1,"ts":"2026-11-26T01:00:00.000Z","run":"r1","key":"k1","campaign":"s",'
            '"account":"acct001","user_id":"1001","tweet_id":"20","action":"retweet",'
            '"status":"ok","retweeted":true,"preexisting":true,"http":200,"error":null,'
            '"attempts":1}\n'
        )
        answer = bulkrt("rollback", str(ledger), "--out", "undo.csv", cwd=tmp_path)
        assert answer.returncode == 0, answer.stderr
        assert "undo.csv (not written)" in answer.stdout
        assert not (tmp_path / "undo.csv").exists()


class TestEveryInputErrorAtOnce:
    """Finding 6: every reused ``id`` is listed, with the other input errors."""

    async def test_every_reused_id_is_listed_with_the_other_problems(
        self, make_world: MakeWorld
    ) -> None:
        """Two rows reusing finished ids for other rows and an unknown account: validate and
        run list all three (each reused id naming its line and both rows), exit 2, nothing
        sent."""
        world = await make_world()
        first = world.dir / "ida.csv"
        first.write_text("id,account,tweet_id,action\nr1,acct001,4001,retweet\n"
                         "r2,acct002,4001,retweet\n")  # fmt: skip
        assert (await run(world, first)).returncode == 0
        second = world.dir / "idb.csv"
        second.write_text(
            "id,account,tweet_id,action\nr9,acct003,4002,retweet\nr2,acct002,4001,undo\n"
            "r1,acct001,4003,retweet\nr5,nosuch,1,retweet\n"
        )
        sent = world.sandbox.state.requests
        checked = bulkrt("validate", str(second), "--accounts", str(world.accounts),
                         "--ledger", str(world.ledger), cwd=world.dir)  # fmt: skip
        done = await run(world, second)
        for answer in (checked, done):
            assert answer.returncode == 2, answer.stderr
            assert f"{second}:3: id: 'r2' is already finished" in answer.stderr
            assert f"{second}:4: id: 'r1' is already finished" in answer.stderr
            assert "unknown account 'nosuch'" in answer.stderr
        assert "3 problem(s) in the input; nothing was sent" in done.stderr
        assert world.sandbox.state.requests == sent


class TestRetweetAgainAfterARollback:
    """Finding 4: the advice names what works, and a rolled-back job's re-run is not exit 0."""

    async def test_a_rerun_of_a_rolled_back_job_says_so_and_exits_1(
        self, make_world: MakeWorld
    ) -> None:
        """After a rollback's undos ran, the original job on the same ledger sends nothing, says
        how many finished retweets the rollback undid and what to do, and exits 1; the advice
        (a new --ledger) then retweets again."""
        world = await make_world()
        job = world.job(CAMPAIGN, name="ed.csv")
        assert (await run(world, job)).returncode == 0
        undo = world.dir / "undo.csv"
        assert (
            bulkrt("rollback", str(world.ledger), "--out", str(undo), cwd=world.dir).returncode == 0
        )
        assert (await run(world, undo)).returncode == 0
        refused = bulkrt("rollback", str(world.ledger), "--campaign", "ed-rollback", "--out",
                         str(world.dir / "rr.csv"), cwd=world.dir)  # fmt: skip
        assert refused.returncode == 2
        assert "run the original job with a new --ledger" in refused.stderr
        sent = world.sandbox.state.requests
        again = await run(world, job)
        assert again.returncode == 1, again.stderr
        assert (
            "2 retweet(s) of this job are finished in this ledger, but a later rollback undid"
            in again.stderr
        )
        assert "acct001 1, acct002 1" in again.stderr
        assert world.sandbox.state.requests == sent
        assert world.retweets("acct001") == set()
        fresh = await run(world, job, "--ledger", str(world.dir / "again.jsonl"))
        assert fresh.returncode == 0, fresh.stderr
        assert world.retweets("acct001") == world.retweets("acct002") == {"3001"}


class TestLedgerWithoutItsJournal:
    """Finding 3: a ledger moved without its ``.sent`` journal is noticed before sending."""

    async def test_a_ledger_copied_without_its_journal_is_warned_about(
        self, make_world: MakeWorld
    ) -> None:
        """A ledger holding retweets, copied elsewhere without its journal: the run warns,
        naming the journal path it expected and the consequence; beside its journal, the same
        ledger gets no such warning."""
        world = await make_world()
        job = world.job(CAMPAIGN)
        assert (await run(world, job)).returncode == 0
        moved = world.dir / "mv" / "ledger.jsonl"
        moved.parent.mkdir()
        shutil.copy(world.ledger, moved)
        expected = moved.resolve().with_name("ledger.jsonl.sent")
        done = await run(world, job, "--ledger", str(moved))
        assert done.returncode == 0, done.stderr
        assert (
            f"journal: the ledger holds retweets but its journal {expected} is missing"
            in done.stderr
        )
        assert "taken for the account's own" in done.stderr
        at_home = await run(world, job)
        assert at_home.returncode == 0
        assert "journal:" not in at_home.stderr


ACCOUNTS = (
    '{"accounts": {"acct001": {"user_id": "1001", "oauth1": {"consumer_key": "ck", '
    '"consumer_secret": "cs", "access_token": "at", "access_token_secret": "ats"}}}}\n'
)
SPREADSHEET_CSVS = [
    ("a ';' separator", b"\xef\xbb\xbfaccount;tweet_id;action\r\nacct001;20;retweet\r\n",
     "s.csv:1: account: missing column: the header is one column holding ';': the file seems "
     "separated by ';'"),
    ("trailing empty columns", b"account,tweet_id,action,,\nacct001,20,retweet,,\n",
     "s.csv:1: header: more than one column has an empty name"),
    ("UTF-16 (Unicode text)", "account,tweet_id,action\r\nacct001,20,retweet\r\n".encode("utf-16"),
     's.csv:1: file: not UTF-8: the file is UTF-16 (Excel\'s "Unicode text")'),
]  # fmt: skip


@pytest.mark.parametrize(("content", "says"), [c[1:] for c in SPREADSHEET_CSVS],
                         ids=[c[0] for c in SPREADSHEET_CSVS])  # fmt: skip
def test_a_spreadsheets_csv_gets_a_message_naming_its_shape(
    tmp_path: Path, content: bytes, says: str
) -> None:
    """A CSV as a spreadsheet saves it (';'-separated, trailing empty columns, UTF-16) is
    refused with exit 2 and a message naming what is wrong with it."""
    (tmp_path / "accounts.json").write_text(ACCOUNTS)
    (tmp_path / "s.csv").write_bytes(content)
    answer = bulkrt("validate", "s.csv", "--accounts", "accounts.json", cwd=tmp_path)
    assert answer.returncode == 2
    assert says in answer.stderr


def test_a_zero_filled_ledger_beside_its_journal_says_what_works(tmp_path: Path) -> None:
    """A ledger a power cut left zero-filled, its journal beside it: status exits 2 saying it
    is not a bulkrt ledger once (not twice) and that emptying it lets rollback read the
    journal."""
    (tmp_path / "z.jsonl").write_bytes(b"\0" * 300)
    (tmp_path / "z.jsonl.sent").write_text(
        '{"e":"sent","key":"k1","campaign":"spring","account":"acct001","tweet_id":"20"}\n'
    )
    answer = bulkrt("status", "z.jsonl", cwd=tmp_path)
    assert answer.returncode == 2
    assert "z.jsonl is not a bulkrt ledger, yet its journal z.jsonl.sent is beside it" in (
        answer.stderr
    )
    assert "empty it (`: > FILE`) and `rollback` reads the journal" in answer.stderr
    assert "not a ledger, not a ledger" not in answer.stderr
