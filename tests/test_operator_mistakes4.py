"""Operator mistakes found by the adversarial pass adv20 and still open after it: an archived,
gzip-compressed ledger given as the ledger, and a standard output that cannot be written. Each runs
the real CLI and checks what the operator sees (exit code, message) and what the sandbox recorded
(nothing sent when the command refuses)."""

from __future__ import annotations

import errno
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from tests.test_operator_mistakes3 import ACCOUNTS, CAMPAIGN, JOB, LEDGER_LINE, bulkrt, files
from tests.test_run import MakeWorld, rows, run_cli

GZIPPED = "is a gzip-compressed bulkrt ledger"


class TestGzippedLedger:
    """A ledger compressed with gzip is read as a ledger by no command, and replaced by none."""

    @pytest.mark.parametrize(
        "name", ["ledger.jsonl.gz", "ledger.jsonl"], ids=["gz-name", "plain-name"]
    )
    async def test_a_run_on_a_gzipped_ledger_is_refused_and_sends_nothing(
        self, make_world: MakeWorld, name: str
    ) -> None:
        """A finished campaign's ledger, gzipped (whatever its name), given to the same `run`,
        its `--dry-run` and `validate --ledger`: exit 2 with the command that decompresses it,
        no request, the file unchanged (before: every item was sent again and the campaign's
        retweets were recorded as the owners')."""
        world = await make_world()
        job = world.job(CAMPAIGN)
        first = await world.run(job)
        assert first.returncode == 0, first.stderr.decode()
        archived = world.dir / name
        packed = gzip.compress(world.ledger.read_bytes())
        world.ledger.unlink()
        archived.write_bytes(packed)
        journal = world.dir / f"{name}.sent"
        kept = journal.read_bytes() if journal.exists() else None
        sent = world.sandbox.state.requests
        for extra in ((), ("--dry-run",)):
            args = [
                part if part != str(world.ledger) else str(archived)
                for part in world.run_args(job, *extra)
            ]
            answer = await run_cli(args)
            err = answer.stderr.decode()
            assert answer.returncode == 2, err
            assert f"{archived}: {GZIPPED}: bulkrt appends only to a plain ledger" in err
            assert "gzip -dc" in err
        checked = bulkrt("validate", str(job), "--accounts", str(world.accounts), "--ledger", name,
                         cwd=world.dir)  # fmt: skip
        assert checked.returncode == 2, checked.stderr
        assert GZIPPED in checked.stderr
        assert world.sandbox.state.requests == sent
        assert archived.read_bytes() == packed
        assert (journal.read_bytes() if journal.exists() else None) == kept

    def test_the_readers_refuse_it_naming_how_to_decompress(self, tmp_path: Path) -> None:
        """status (text and --json), report and rollback on `old.jsonl.gz` exit 2 with
        `gzip -dc old.jsonl.gz > old.jsonl`, and write no output file (before: "0 items",
        exit 0)."""
        files(tmp_path, acc_json=ACCOUNTS)
        (tmp_path / "old.jsonl.gz").write_bytes(gzip.compress(LEDGER_LINE.encode()))
        for args in (
            ("status", "old.jsonl.gz"),
            ("status", "old.jsonl.gz", "--json"),
            ("report", "old.jsonl.gz", "--html", "report.html"),
            ("rollback", "old.jsonl.gz", "--out", "undo.csv"),
        ):
            answer = bulkrt(*args, cwd=tmp_path)
            assert answer.returncode == 2, (args, answer.stderr)
            assert GZIPPED in answer.stderr, args
            assert "gzip -dc old.jsonl.gz > old.jsonl" in answer.stderr, args
        assert not (tmp_path / "report.html").exists()
        assert not (tmp_path / "undo.csv").exists()

    def test_no_command_writes_over_it_and_expand_names_it(self, tmp_path: Path) -> None:
        """`expand --out` the archived ledger, even with --force, is refused and leaves it whole;
        given as `expand --accounts`, it is named for what it is."""
        files(tmp_path, acc_json=ACCOUNTS)
        packed = gzip.compress(LEDGER_LINE.encode())
        (tmp_path / "old.jsonl.gz").write_bytes(packed)
        over = bulkrt("expand", "--accounts", "acc.json", "--tweets", "20", "--campaign", "c",
                      "--out", "old.jsonl.gz", "--force", cwd=tmp_path)  # fmt: skip
        assert over.returncode == 2
        assert f"{GZIPPED}; this command does not replace one, even with --force" in over.stderr
        assert (tmp_path / "old.jsonl.gz").read_bytes() == packed
        listed = bulkrt("expand", "--accounts", "old.jsonl.gz", "--tweets", "20", "--campaign",
                        "c", "--out", "job.csv", cwd=tmp_path)  # fmt: skip
        assert listed.returncode == 2
        assert GZIPPED in listed.stderr
        assert not (tmp_path / "job.csv").exists()

    async def test_a_plain_ledger_named_gz_still_resumes(self, make_world: MakeWorld) -> None:
        """Only the content counts: a plain ledger renamed `.gz` resumes as itself (nothing
        sent again, exit 0)."""
        world = await make_world()
        job = world.job(CAMPAIGN)
        assert (await world.run(job)).returncode == 0
        renamed = world.dir / "ledger.jsonl.gz"
        world.ledger.rename(renamed)
        (world.dir / "ledger.jsonl.sent").rename(world.dir / "ledger.jsonl.gz.sent")
        sent = world.sandbox.state.requests
        args = [part if part != str(world.ledger) else str(renamed) for part in world.run_args(job)]
        answer = await run_cli(args)
        assert answer.returncode == 0, answer.stderr.decode()
        assert world.sandbox.state.requests == sent


class TestStdoutCannotBeWritten:
    """Standard output on a full disk: the output is incomplete, and the exit code says so."""

    def test_reading_commands_exit_74_naming_their_own_exit_code(self, tmp_path: Path) -> None:
        """status, status --json, validate and rollback with stdout on /dev/full exit 74 with one
        line saying the output is incomplete and the command's own exit code, not a traceback;
        rollback still writes its undo job (before: a traceback and exit 1)."""
        files(tmp_path, acc_json=ACCOUNTS, job_csv=JOB, ledger_jsonl=LEDGER_LINE)
        for args in (
            ("status", "ledger.jsonl"),
            ("status", "ledger.jsonl", "--json"),
            ("validate", "job.csv", "--accounts", "acc.json"),
            ("rollback", "ledger.jsonl", "--out", "undo.csv"),
        ):
            with open("/dev/full", "wb") as full:
                answer = bulkrt(*args, cwd=tmp_path, stdout=full.fileno())
            assert answer.returncode == 74, (args, answer.stderr)
            assert "Traceback" not in answer.stderr
            assert answer.stderr.endswith(
                "bulkrt: standard output could not be written (No space left on device): what "
                "the command printed is incomplete; its own exit code was 0, exit 74 instead\n"
            ), args
        assert (tmp_path / "undo.csv").read_text().splitlines()[1:] == [
            "spring-rollback,acct001,20,undo"
        ]

    async def test_a_run_completes_its_ledger_then_exits_74(self, make_world: MakeWorld) -> None:
        """`run --json` with stdout on /dev/full sends the job, writes every ledger line, then
        exits 74 saying its own exit code was 0; the same run again sends nothing."""
        world = await make_world()
        job = world.job(CAMPAIGN)
        with open("/dev/full", "wb") as full:  # noqa: ASYNC230  # opening a device: no wait
            answer = await anyio.run_process(
                world.run_args(job, "--json"), stdout=full, stderr=subprocess.PIPE, check=False
            )
        err = answer.stderr.decode()
        assert answer.returncode == 74, err
        assert "its own exit code was 0, exit 74 instead" in err
        assert sorted((line["account"], line["status"]) for line in world.lines()) == [
            ("acct001", "ok"), ("acct002", "ok")
        ]  # fmt: skip
        sent = world.sandbox.state.requests
        again = await world.run(job)
        assert again.returncode == 0
        assert world.sandbox.state.requests == sent


JOURNAL_LINE = (
    '{"e":"sent","key":"[\\"spring\\",\\"acct001\\",\\"retweet\\",\\"20\\",0]",'
    '"campaign":"spring","account":"acct001","tweet_id":"20"}\n'
)


class TestJournalGivenAsInput:
    """A ledger's journal (``<ledger>.sent``) given as a job or as the accounts file."""

    @pytest.mark.parametrize(
        ("args", "says"),
        [
            (("run", "ledger.jsonl.sent", "--accounts", "acc.json", "--ledger", "new.jsonl"),
             "ledger.jsonl.sent: file: this is a ledger's journal (<ledger>.sent: the requests "
             "runs sent), not a job: nothing was read from it"),
            (("validate", "copy.sent.jsonl", "--accounts", "acc.json"),
             "copy.sent.jsonl:1: file: this is a ledger's journal (<ledger>.sent: the requests "
             "runs sent), not a job"),
            (("run", "job.csv", "--accounts", "ledger.jsonl.sent", "--ledger", "new.jsonl"),
             "ledger.jsonl.sent: file: this is a ledger's journal (<ledger>.sent: the requests "
             "runs sent), not an accounts file"),
        ],
        ids=["as-job", "as-jsonl-job", "as-accounts"],
    )  # fmt: skip
    def test_it_is_named_for_what_it_is_and_nothing_is_created(
        self, tmp_path: Path, args: tuple[str, ...], says: str
    ) -> None:
        """Exit 2 naming the journal (before: "unknown format", one "action: missing" per line,
        or "a job file (JSONL)"), and no ledger is created."""
        files(tmp_path, acc_json=ACCOUNTS, job_csv=JOB, ledger_jsonl=LEDGER_LINE)
        (tmp_path / "ledger.jsonl.sent").write_text(JOURNAL_LINE * 3)
        (tmp_path / "copy.sent.jsonl").write_text(JOURNAL_LINE * 3)
        answer = bulkrt(*args, cwd=tmp_path)
        assert answer.returncode == 2, answer.stderr
        assert says in answer.stderr
        assert answer.stderr.count("this is a ledger's journal") == 1  # one problem, not one a line
        assert not (tmp_path / "new.jsonl").exists()


class TestLedgerSyncFailsAtTheEnd:
    """The ledger's last fsync, as the run ends, fails (an I/O error of a dying disk)."""

    async def test_it_is_a_storage_failure_with_the_resume_not_bad_input(
        self, make_world: MakeWorld, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The ledger's first fsync works (the dispatcher's, once the lines are written), the
        next fails (the ledger's close): exit 74 naming the ledger, the cause and the resume,
        not exit 2 "nothing was sent" after sending the whole job; the resume then sends
        nothing again."""
        world = await make_world()
        job = world.job(CAMPAIGN)
        real_fsync = os.fsync
        synced: list[int] = []

        def failing_for_the_ledger(fd: int) -> None:
            if os.readlink(f"/proc/self/fd/{fd}") == str(world.ledger):
                synced.append(fd)  # in the forked run's memory
                if len(synced) > 1:
                    raise OSError(errno.EIO, os.strerror(errno.EIO))
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", failing_for_the_ledger)  # the forked run inherits it
        answer = await world.run(job)
        monkeypatch.undo()
        err = answer.stderr.decode()
        assert answer.returncode == 74, err
        assert (
            f"bulkrt run: stopped: cannot write {world.ledger}: cannot sync the ledger: "
            f"Input/output error. Nothing more was sent after 2 of 2 items"
        ) in err
        assert "nothing was sent" not in err
        assert world.sandbox.state.requests == 2
        again = await world.run(job)
        assert again.returncode == 0, again.stderr.decode()
        assert world.sandbox.state.requests == 2


class TestRunJsonAfterARollback:
    """A job run again on the ledger where its retweets were rolled back (adv21 L1)."""

    async def test_the_summary_names_the_retweets_a_later_rollback_undid(
        self, make_world: MakeWorld
    ) -> None:
        """Exit 1 for retweets a later rollback undid is explained in `--json` as on stderr: an
        `undone_by_rollback` count per account and a hint saying what to do (the object had held
        nothing that explained the exit code)."""
        world = await make_world()
        job = world.job(rows(["acct001", "acct002"], 2))
        assert (await world.run(job)).returncode == 0
        undo = world.dir / "undo.csv"
        args = ["rollback", str(world.ledger), "--out", str(undo)]
        made = await run_cli([sys.executable, "-m", "bulkrt", *args])
        assert made.returncode == 0, made.stderr.decode()
        assert (await world.run(undo)).returncode == 0
        again = await world.run(job, "--json")
        assert again.returncode == 1, again.stderr.decode()
        summary = json.loads(again.stdout)
        assert summary["undone_by_rollback"] == {"acct001": 2, "acct002": 2}
        assert any(
            hint.startswith("4 retweet(s) of this job were undone by a later rollback")
            and "--ledger" in hint
            for hint in summary["hints"]
        ), summary["hints"]
        assert world.sandbox.state.requests == 8  # the third run sent nothing
