"""Operator mistakes still open after the adversarial pass adv19: each runs the real CLI and
checks what the operator sees (exit code, the message naming file, line and field, stdout as a
script reads it) and what the sandbox recorded (nothing sent when the command refuses)."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import anyio.abc
import pytest

from tests.test_mistakes import bulkrt as forked_bulkrt
from tests.test_run import MakeWorld, eventually

CAMPAIGN = [("acct001", "3001", "retweet"), ("acct002", "3001", "retweet")]
ACCOUNTS = (
    '{"accounts": {"acct001": {"user_id": "1001", "oauth1": {"consumer_key": "ck", '
    '"consumer_secret": "cs", "access_token": "at", "access_token_secret": "ats"}}}}\n'
)
LEDGER_LINE = (
    '{"schema":1,"ts":"2026-11-26T01:00:00.000Z","run":"r1","key":"k1","campaign":"spring",'
    '"account":"acct001","user_id":"1001","tweet_id":"20","action":"retweet","status":"ok",'
    '"retweeted":true,"preexisting":false,"http":200,"error":null,"attempts":1}\n'
)
JOB = "account,tweet_id,action\nacct001,20,retweet\n"
JSONL_JOB = (
    '{"account":"acct001","tweet_id":"20","action":"retweet"}\n'
    '{"account":"acct001","tweet_id":"21","action":"retweet"}\n'
)


def bulkrt(*args: str, cwd: Path, stdout: int | None = None) -> subprocess.CompletedProcess[str]:
    """The real `bulkrt` command (never waiting more than 60 s): forked with no interpreter
    start-up (`tests.test_mistakes.bulkrt`), or, given a ``stdout`` descriptor (a pipe whose
    reader left), a fresh interpreter writing to it."""
    if stdout is None:
        return forked_bulkrt(*args, cwd=cwd)
    return subprocess.run(
        [sys.executable, "-m", "bulkrt", *args],
        cwd=cwd,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )


def files(root: Path, **contents: str) -> None:
    """Write each ``name=content`` under ``root`` (dots in names as ``_``: ``acc_json``)."""
    for name, content in contents.items():
        path = root / name.replace("_", ".")
        path.write_text(content)
        path.chmod(0o600)  # an accounts file readable by others gets a warning of its own


class TestSpreadsheetIds:
    """Finding 7: an ID that went through a spreadsheet's 15 digits, or a JSON number."""

    @pytest.mark.parametrize(
        ("name", "content", "says"),
        [
            ("job.csv", "account,tweet_id,action\nacct001,1861359704022660000,retweet\n",
             "job.csv:2: tweet_id: '1861359704022660000' ends in 4 zeros: perhaps a longer ID "
             "a spreadsheet rounded (Excel keeps 15 significant digits)"),
            ("job.jsonl",
             '{"account": "acct001", "tweet_id": 1861359704022656025, "action": "retweet"}\n',
             "job.jsonl:1: tweet_id: a JSON number above 2**53 (1861359704022656025): most "
             "tools (JavaScript, spreadsheets, many JSON libraries) round such numbers, so it "
             'may name another Tweet; write the ID as a string, in quotes ("tweet_id": '
             '"1861359704022656025")'),
        ],
        ids=["csv-zeros", "jsonl-integer"],
    )  # fmt: skip
    def test_a_likely_rounded_id_is_warned_about_naming_the_line_not_refused(
        self, tmp_path: Path, name: str, content: str, says: str
    ) -> None:
        """A 19-digit ID ending in 4 zeros (CSV) or a JSON integer above 2**53 is valid (exit
        0) but warned about, naming file, line and field, the cause and what to do."""
        files(tmp_path, acc_json=ACCOUNTS)
        (tmp_path / name).write_text(content)
        answer = bulkrt("validate", name, "--accounts", "acc.json", cwd=tmp_path)
        assert answer.returncode == 0, answer.stderr
        assert f"warning: {says}" in answer.stderr

    def test_expand_warns_about_a_likely_rounded_id_and_writes_the_job(
        self, tmp_path: Path
    ) -> None:
        """`expand --tweets` with an ID ending in 4 zeros writes the job (exit 0) and warns,
        naming the entry."""
        answer = bulkrt("expand", "--accounts", "acct001", "--tweets", "20,1861359704022660000",
                        "--campaign", "spring", "--out", "spring.csv", cwd=tmp_path)  # fmt: skip
        assert answer.returncode == 0, answer.stderr
        assert (
            "warning: --tweets:2: tweet_id: '1861359704022660000' ends in 4 zeros: perhaps a "
            "longer ID a spreadsheet rounded"
        ) in answer.stderr
        assert "1861359704022660000" in (tmp_path / "spring.csv").read_text()

    def test_an_exact_id_and_a_small_json_integer_get_no_warning(self, tmp_path: Path) -> None:
        """An ID not ending in 4 zeros, a short one that does, and a JSON integer below 2**53
        are not warned about (the warning is for likely rounding only)."""
        files(tmp_path, acc_json=ACCOUNTS)
        (tmp_path / "job.csv").write_text(
            "account,tweet_id,action\nacct001,1861359704022656025,retweet\nacct001,200000,retweet\n"
        )
        (tmp_path / "job.jsonl").write_text(
            '{"account": "acct001", "tweet_id": 9007199254740992, "action": "retweet"}\n'
        )
        for name in ("job.csv", "job.jsonl"):
            answer = bulkrt("validate", name, "--accounts", "acc.json", cwd=tmp_path)
            assert answer.returncode == 0, answer.stderr
            assert "warning:" not in answer.stderr

    def test_the_warnings_of_one_file_stop_after_twenty(self, tmp_path: Path) -> None:
        """A file whose every ID was rounded gets 20 warnings, the last saying the rest are not
        repeated, not one per row, and a line counting the rest."""
        files(tmp_path, acc_json=ACCOUNTS)
        rows = "".join(f"acct001,1861359704022{n:02d}0000,retweet\n" for n in range(50))
        (tmp_path / "job.csv").write_text("account,tweet_id,action\n" + rows)
        answer = bulkrt("validate", "job.csv", "--accounts", "acc.json", cwd=tmp_path)
        assert answer.returncode == 0, answer.stderr
        warnings = [line for line in answer.stderr.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 21
        assert warnings[-2].startswith("warning: job.csv:21: tweet_id:")
        assert warnings[-2].endswith("(not repeated for later rows)")
        more = "warning: job.csv: tweet_id: 30 more row(s) with this warning, not listed"
        assert warnings[-1] == more

    @pytest.mark.parametrize(
        ("cell", "says"),
        [
            ('"=""1861359704022656025"""',
             "job.csv:2: tweet_id: '=\"1861359704022656025\"' is Excel's formula form "
             '(="...") of an ID kept as text: write the digits alone (1861359704022656025)'),
            ("1861359704022656025.0",
             "job.csv:2: tweet_id: '1861359704022656025.0' is a decimal number: a spreadsheet "
             "or script wrote the IDs as numbers, which keep 15 significant digits"),
            ("1.86136E+18",
             "job.csv:2: tweet_id: '1.86136E+18' is in scientific notation: a spreadsheet "
             "showed the ID as a number"),
            ('"1,86136E+18"',
             "job.csv:2: tweet_id: '1,86136E+18' is in scientific notation: a spreadsheet "
             "showed the ID as a number"),
            ('"1861359704022656025,0"',
             "job.csv:2: tweet_id: '1861359704022656025,0' is a decimal number: a spreadsheet "
             "or script wrote the IDs as numbers"),
        ],
        ids=["formula", "decimal", "scientific", "scientific-comma", "decimal-comma"],
    )  # fmt: skip
    def test_a_spreadsheet_number_is_refused_naming_the_cause_and_the_fix(
        self, tmp_path: Path, cell: str, says: str
    ) -> None:
        """Excel's ``="..."`` text formula, a ``.0`` decimal and scientific notation exit 2 with
        a message that shows the cell, names the spreadsheet cause and says to format the
        column as text; never "could hold a secret"."""
        files(tmp_path, acc_json=ACCOUNTS)
        (tmp_path / "job.csv").write_text(f"account,tweet_id,action\nacct001,{cell},retweet\n")
        answer = bulkrt("validate", "job.csv", "--accounts", "acc.json", cwd=tmp_path)
        assert answer.returncode == 2
        assert says in answer.stderr
        assert "format the ID column as text" in answer.stderr
        assert "secret" not in answer.stderr

    def test_a_json_float_tweet_id_says_to_quote_it(self, tmp_path: Path) -> None:
        """A JSON number with an exponent as tweet_id exits 2 saying to write it in quotes."""
        files(tmp_path, acc_json=ACCOUNTS)
        (tmp_path / "job.jsonl").write_text(
            '{"account": "acct001", "tweet_id": 1.8613597040226560e18, "action": "retweet"}\n'
        )
        answer = bulkrt("validate", "job.jsonl", "--accounts", "acc.json", cwd=tmp_path)
        assert answer.returncode == 2
        assert (
            "job.jsonl:1: tweet_id: a JSON number with a decimal point or exponent "
            "(1.861359704022656e+18) is not an exact ID: write the ID as a string, in quotes"
        ) in answer.stderr


class TestSwappedFiles:
    """Finding 8: a job or a ledger given as the accounts file, and `expand`'s mix-ups."""

    @pytest.mark.parametrize(
        ("accounts", "kind"),
        [("job.csv", "a job file (CSV)"), ("ledger.jsonl", "a bulkrt ledger (outcomes of runs)"),
         ("job.jsonl", "a job file (JSONL)")],
    )  # fmt: skip
    def test_a_job_or_ledger_as_accounts_file_is_named_for_what_it_is(
        self, tmp_path: Path, accounts: str, kind: str
    ) -> None:
        """`run acc.json --accounts <job or ledger>` exits 2 saying what the file is and which
        to give, not a JSON parser's message; the files are unchanged, nothing is created."""
        files(
            tmp_path,
            acc_json=ACCOUNTS,
            job_csv=JOB,
            ledger_jsonl=LEDGER_LINE * 2,
            job_jsonl='{"account": "acct001", "tweet_id": "20", "action": "retweet"}\n' * 2,
        )
        before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
        answer = bulkrt("run", "acc.json", "--accounts", accounts, "--ledger", "new.jsonl",
                        "--api-base", "http://127.0.0.1:9", cwd=tmp_path)  # fmt: skip
        assert answer.returncode == 2
        assert (
            f"{accounts}: file: this is {kind}, not an accounts file: nothing was read from it; "
            f"give the accounts file (JSON) with --accounts"
        ) in answer.stderr
        assert "Expecting value" not in answer.stderr and "Extra data" not in answer.stderr
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before

    def test_expand_with_a_missing_tweets_file_says_no_such_file(self, tmp_path: Path) -> None:
        """`expand --tweets spring-tweets.txt` with no such file exits 2 saying so, once, and
        writes nothing (it is not taken for a Tweet ID)."""
        answer = bulkrt("expand", "--accounts", "acct001", "--tweets", "spring-tweets.txt",
                        "--campaign", "spring", "--out", "spring.csv", cwd=tmp_path)  # fmt: skip
        assert answer.returncode == 2
        assert answer.stderr.splitlines() == [
            "spring-tweets.txt: --tweets: no such file (and not a list of Tweet IDs or post URLs)",
            "bulkrt expand: 1 problem(s); nothing written",
        ]
        assert not (tmp_path / "spring.csv").exists()

    @pytest.mark.parametrize(
        ("option", "entries"), [("--tweets", "Tweet IDs or post URLs"),
                                ("--accounts", "account names")]
    )  # fmt: skip
    def test_expand_given_a_job_file_as_a_list_says_what_it_is(
        self, tmp_path: Path, option: str, entries: str
    ) -> None:
        """A job file given as `expand --tweets` (or `--accounts`) exits 2 with one problem
        saying it is a job file, not one error per row; nothing is written."""
        files(tmp_path, job_csv=JOB * 1 + "acct001,21,retweet\n")
        given = {"--tweets": "20", "--accounts": "acct001", option: "job.csv"}
        answer = bulkrt("expand", "--accounts", given["--accounts"], "--tweets",
                        given["--tweets"], "--campaign", "spring", "--out", "spring.csv",
                        cwd=tmp_path)  # fmt: skip
        assert answer.returncode == 2
        assert answer.stderr.splitlines() == [
            f"job.csv:1: file: this is a job file (CSV), not a list of {entries}: nothing was "
            f"read from it; give a file of one entry a line, or the entries with commas",
            "bulkrt expand: 1 problem(s); nothing written",
        ]
        assert not (tmp_path / "spring.csv").exists()

    @pytest.mark.parametrize(
        ("option", "name", "content", "kind"),
        [("--accounts", "L.jsonl", LEDGER_LINE * 2, "a bulkrt ledger"),
         ("--tweets", "L.jsonl", LEDGER_LINE * 2, "a bulkrt ledger"),
         ("--accounts", "j.jsonl", JSONL_JOB, "a bulkrt job file"),
         ("--tweets", "j.jsonl", JSONL_JOB, "a bulkrt job file"),
         ("--tweets", "acc.json", ACCOUNTS, "a bulkrt accounts file")],
    )  # fmt: skip
    def test_expand_given_another_bulkrt_file_as_a_list_says_what_it_is(
        self, tmp_path: Path, option: str, name: str, content: str, kind: str
    ) -> None:
        """A ledger, a JSONL job or (for --tweets) an accounts file given as a list to
        `expand` exits 2 with one problem naming what the file is (adv20: a JSON parser's "Extra
        data", or one error per line); nothing is written."""
        (tmp_path / name).write_text(content)
        given = {"--tweets": "20", "--accounts": "acct001", option: name}
        answer = bulkrt("expand", "--accounts", given["--accounts"], "--tweets",
                        given["--tweets"], "--campaign", "spring", "--out", "spring.csv",
                        cwd=tmp_path)  # fmt: skip
        assert answer.returncode == 2
        entries = "account names" if option == "--accounts" else "Tweet IDs or post URLs"
        assert answer.stderr.splitlines() == [
            f"{name}: file: this is {kind}, not a list of {entries}: nothing was read from it; "
            f"give a file of one entry a line, or the entries with commas",
            "bulkrt expand: 1 problem(s); nothing written",
        ]
        assert not (tmp_path / "spring.csv").exists()

    def test_expand_out_over_its_accounts_file_is_one_problem(self, tmp_path: Path) -> None:
        """`expand --out acc.json` (the accounts file it reads) exits 2 with that one problem,
        not also "name it .csv", and the file is unchanged."""
        files(tmp_path, acc_json=ACCOUNTS)
        answer = bulkrt("expand", "--accounts", "acc.json", "--tweets", "20", "--campaign",
                        "spring", "--out", "acc.json", cwd=tmp_path)  # fmt: skip
        assert answer.returncode == 2
        assert answer.stderr.splitlines() == [
            "acc.json: --out: that is the --accounts file it reads; name another file",
            "bulkrt expand: 1 problem(s); nothing written",
        ]
        assert (tmp_path / "acc.json").read_text() == ACCOUNTS


class TestClosedStdout:
    """Finding 11: ``bulkrt status L | head -1``: a reader that left is not an error."""

    def test_commands_whose_stdout_reader_left_end_as_they_would_have(self, tmp_path: Path) -> None:
        """With stdout a pipe nobody reads any more, status, status --json, validate, report
        and rollback exit 0 with nothing on stderr; report and rollback still write their
        files."""
        files(tmp_path, acc_json=ACCOUNTS, job_csv=JOB, ledger_jsonl=LEDGER_LINE)
        for args in (
            ("status", "ledger.jsonl"),
            ("status", "ledger.jsonl", "--json"),
            ("validate", "job.csv", "--accounts", "acc.json"),
            ("report", "ledger.jsonl", "--html", "report.html"),
            ("rollback", "ledger.jsonl", "--out", "undo.csv"),
        ):
            read, write = os.pipe()
            os.close(read)  # the reader is gone before the command prints
            try:
                answer = bulkrt(*args, cwd=tmp_path, stdout=write)
            finally:
                os.close(write)
            assert (answer.returncode, answer.stderr) == (0, ""), args
        assert "<html" in (tmp_path / "report.html").read_text()
        assert (tmp_path / "undo.csv").read_text().splitlines()[1:] == [
            "spring-rollback,acct001,20,undo"
        ]

    def test_validate_keeps_its_exit_code_when_its_reader_left(self, tmp_path: Path) -> None:
        """A job with a bad row still exits 2, listing it on stderr, when stdout's reader left."""
        files(tmp_path, acc_json=ACCOUNTS, job_csv=JOB + "nosuch,20,retweet\n")
        read, write = os.pipe()
        os.close(read)
        try:
            answer = bulkrt("validate", "job.csv", "--accounts", "acc.json", cwd=tmp_path,
                            stdout=write)  # fmt: skip
        finally:
            os.close(write)
        assert answer.returncode == 2
        assert "job.csv:3: account: unknown account 'nosuch'" in answer.stderr


def limited(args: list[str], size: int) -> subprocess.CompletedProcess[str]:
    """``args`` run with files limited to ``size`` bytes: a write beyond fails as on a full disk."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return subprocess.run(
        args, capture_output=True, text=True, preexec_fn=limit, check=False, timeout=60
    )


class TestRunEnds:
    """Findings 10 and 11: how a run ends on a full disk, a late signal, a stdin job."""

    async def test_json_on_a_full_disk_prints_the_summary_object_with_the_failure(
        self, make_world: MakeWorld
    ) -> None:
        """``--json`` with exit 74 prints one JSON object on stdout: the summary's keys as on
        success, the failure (file and cause) and the resume command; stderr keeps the message."""
        world = await make_world(limit=50)
        job = world.job([("acct001", str(100 + n), "retweet") for n in range(12)])
        args = world.run_args(job, "--concurrency", "1", "--json")
        full = await anyio.to_thread.run_sync(limited, args, 1000)
        assert full.returncode == 74, full.stderr
        document = json.loads(full.stdout)  # the whole of stdout is one object
        assert {"ledger", "items", "this_run", "requests", "hints"} <= document.keys()
        assert document["items"] == 12 and document["ledger"] == str(world.ledger)
        failure = document["storage_failed"]
        assert failure["path"].endswith(("ledger.jsonl", "ledger.jsonl.sent"))
        assert "File too large" in failure["error"]
        assert document["resume"].startswith("bulkrt run ")
        assert "cannot write" in full.stderr

    async def test_a_signal_after_the_last_item_is_written_ends_the_run_as_done(
        self, make_world: MakeWorld
    ) -> None:
        """SIGINT arriving once every item's line is in the ledger (the process held stopped
        at that moment, then let go) ends the run as done: exit 0 and the summary, no resume
        hint; the ledger holds every item once."""
        world = await make_world()
        caught = 0
        for attempt in range(5):  # the process may exit before it can be held: try again
            job = world.job([("acct001", str(7000 + 10 * attempt + n), "retweet")
                             for n in range(3)], name=f"late{attempt}.csv")  # fmt: skip
            ledger = world.dir / f"late{attempt}.jsonl"
            args = world.run_args(job, "--ledger", str(ledger))
            async with await anyio.open_process(args) as process:
                with anyio.fail_after(30):  # another process's file: polled, every 1 ms
                    while not ledger.exists() or ledger.read_bytes().count(b"\n") < 3:  # noqa: ASYNC110
                        await anyio.sleep(0.001)
                held = _hold(process.pid)
                process.send_signal(signal.SIGINT)
                os.kill(process.pid, signal.SIGCONT)
                with anyio.fail_after(30):
                    await process.wait()
                out, err = await drained(process)
            assert process.returncode == 0, (held, out, err)
            assert "3 items: 3 ok" in out and "To resume" not in out
            assert len(ledger.read_text().splitlines()) == 3
            caught += held
            if caught:
                break
        assert caught, "the run always exited before the signal: nothing was tested"

    async def test_a_stdin_run_stopped_says_to_pipe_the_same_job_again(
        self, make_world: MakeWorld
    ) -> None:
        """A run reading its job from standard input, stopped by SIGINT, exits 130 and its
        resume hint says the same job must be piped to it again."""
        world = await make_world(limit=1, window=10.0)
        job = world.job([("acct001", str(100 + n), "retweet") for n in range(3)])
        args = world.run_args(Path("-"), "--format", "csv")
        async with await anyio.open_process(args) as process:
            assert process.stdin is not None
            await process.stdin.send(job.read_bytes())
            await process.stdin.aclose()
            await eventually(lambda: len(world.lines()) >= 1)
            process.send_signal(signal.SIGINT)
            with anyio.fail_after(30):
                await process.wait()
            assert process.stdout is not None
            out = (await process.stdout.receive()).decode()
        assert process.returncode == 130
        assert "To resume, run the same command again" in out
        assert " run - " in out
        assert "# with the same job piped to it again (it was read from standard input)" in out


async def drained(process: anyio.abc.Process) -> tuple[str, str]:
    """What an ended process wrote on stdout and stderr."""
    texts = []
    for stream in (process.stdout, process.stderr):
        assert stream is not None
        chunks = []
        with contextlib.suppress(anyio.EndOfStream):
            while True:
                chunks.append(await stream.receive())
        texts.append(b"".join(chunks).decode())
    return texts[0], texts[1]


def _hold(pid: int) -> bool:
    """Stop process ``pid`` (SIGSTOP); whether it was still running (not exited) when held."""
    os.kill(pid, signal.SIGSTOP)
    for _ in range(1000):  # the stop takes effect at the process's next scheduling
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        if state in ("T", "t", "Z", "X"):
            return state in ("T", "t")
        time.sleep(0.001)
    return False


class TestLedgerSwappedUnderTheLock:
    """Re-planning under the lock repeats the first plan's user-id check."""

    async def test_a_ledger_swapped_after_the_first_check_is_still_refused(
        self, make_world: MakeWorld
    ) -> None:
        """A run reading its job from standard input has read the ledger (its own accounts'
        user ids) when another ledger, of other user ids for acct001 and acct002, replaces it;
        under the lock it sees the change and refuses it: exit 2 naming both user ids, no
        request sent, the ledger unchanged."""
        world = await make_world()
        job = world.job(CAMPAIGN)
        first = await world.run(job)
        assert first.returncode == 0, first.stderr.decode()
        one, two = world.user_id("acct001"), world.user_id("acct002")
        swapped = world.ledger.read_text().replace(f'"{one}"', '"ONE"')
        swapped = swapped.replace(f'"{two}"', f'"{one}"').replace('"ONE"', f'"{two}"')
        sent = world.sandbox.state.requests
        args = world.run_args(Path("-"), "--format", "csv")
        async with await anyio.open_process(args) as process:
            # the job is being spooled from stdin: the ledger was read before that
            await eventually(lambda: _spooling(process.pid))
            replacement = world.dir / "swapped.jsonl"
            replacement.write_text(swapped)
            replacement.replace(world.ledger)
            assert process.stdin is not None
            await process.stdin.send(job.read_bytes())
            await process.stdin.aclose()
            with anyio.fail_after(30):
                await process.wait()
            assert process.stderr is not None
            err = (await process.stderr.receive()).decode()
        assert process.returncode == 2, err
        assert (
            f"accounts.acct001: the ledger {world.ledger} holds lines for account acct001 as "
            f"user id {two}; this accounts file gives acct001 user id {one}"
        ) in err
        assert "nothing was sent" in err
        assert world.sandbox.state.requests == sent
        assert world.ledger.read_text() == swapped


def _spooling(pid: int) -> bool:
    """Whether process ``pid`` has standard input's spool file open (`open_jobs`)."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any("bulkrt-stdin-" in os.readlink(fd) for fd in fds.iterdir())
    except OSError:
        return False
