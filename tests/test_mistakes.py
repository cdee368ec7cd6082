"""An operator's mistake costs a clear message, never a file: each case runs the real CLI in a
subprocess and checks the exit code, that the message says what went wrong and what to do, and
that every file that was there before is still there with the same bytes."""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

from bulkrt import launch
from bulkrt.sandbox import FaultKind
from bulkrt.sandbox.config import RateLimitHeaders
from tests.test_run import ACCOUNTS as NAMES
from tests.test_run import MakeWorld, rows, run_cli

LEDGER_LINE = (
    '{"schema":1,"ts":"2026-11-26T01:00:00.000Z","run":"r1","key":"k1","campaign":"spring",'
    '"account":"acct001","user_id":"1001","tweet_id":"20","action":"retweet","status":"ok",'
    '"retweeted":true,"preexisting":false,"http":200,"error":null,"attempts":1}\n'
)
JOB = "account,tweet_id,action\nacct001,20,retweet\n"
JSONL_JOB = '{"account": "acct001", "tweet_id": "20", "action": "retweet"}\n'
UNDO_JOB = "account,tweet_id,action,campaign\nacct001,20,undo,spring-rollback\n"
JOURNAL_LINE = '{"e":"sent","key":"k1","campaign":"spring","account":"acct001","tweet_id":"20"}\n'
ACCOUNTS = (
    '{"accounts": {"acct001": {"user_id": "1001", "oauth1": {"consumer_key": "ck", '
    '"consumer_secret": "cs", "access_token": "at", "access_token_secret": "ats"}}}}\n'
)


def bulkrt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real `bulkrt` command (its console entry point, `launch.main`) in a child
    process, run in ``cwd`` with this process's environment: its own process (files, signals,
    exit code, stdout and stderr) forked from the test process as `tests.test_run.CliChild`
    forks it (the child closes every descriptor it inherited), so each of the many mistakes here
    costs no interpreter start-up, nor a fork server's (a fresh interpreter per test process
    that imported bulkrt again: about 0.6 s of CPU in each of the suite's workers). Forking a
    process with threads (pytest-xdist's) is safe here because the child takes none of their
    locks: every command is imported before the fork (`tests.test_run.preload_commands`) and
    the child writes only to descriptors of its own. The child reads /dev/null and warns as a
    fresh interpreter does; `tests/test_startup.py` and the other
    files' subprocesses check what only a fresh interpreter shows."""
    from tests.test_run import PYTHON_M_BULKRT, CliChild

    child = CliChild([*PYTHON_M_BULKRT, *args], cwd=cwd)
    try:
        deadline = time.monotonic() + 60
        pause = 0.001
        while (code := child.poll()) is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(["bulkrt", *args], 60)
            time.sleep(pause)
            pause = min(pause * 2, 0.02)
    finally:
        child.close()
    return subprocess.CompletedProcess(
        ["bulkrt", *args], code, _text(child.stdout()), _text(child.stderr())
    )


def _text(output: bytes) -> str:
    """``output`` as `subprocess.run`'s ``text=True`` gives it: decoded, universal newlines."""
    return output.decode().replace("\r\n", "\n").replace("\r", "\n")


def run_here(
    args: tuple[str, ...], cwd: Path, out: int, err: int, *, script: str | None = None
) -> NoReturn:
    """Run `bulkrt ARGS` in ``cwd`` in this (forked) process with stdout and stderr on those
    descriptors, then exit with its code (``os._exit``: nothing of the parent's, its buffers or
    exit handlers, runs here). With ``script``, what ``python -c SCRIPT ARGS`` would run instead
    of `bulkrt`."""
    code = 1
    try:
        os.chdir(cwd)
        stdin = os.open(os.devnull, os.O_RDONLY)
        for fd, target in ((stdin, 0), (out, 1), (err, 2)):
            os.dup2(fd, target)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115  # the child's whole life
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        warnings.resetwarnings()  # a fresh interpreter's filters, not the suite's "error"
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                         ResourceWarning):  # fmt: skip
            warnings.simplefilter("ignore", category)
        # printed on stderr, not appended to the list of pytest's recorder (the test's
        # ``catch_warnings(record=True)``, which the fork inherits)
        warnings.showwarning = _print_warning
        # no handler on the root logger, as in a fresh interpreter: a library's logged error
        # reaches stderr through logging's last resort, not pytest's capture handlers
        logging.root.handlers.clear()
        logging.root.setLevel(logging.WARNING)
        sys.argv = ["bulkrt", *args] if script is None else ["-c", *args]
        try:
            if script is None:
                launch.main()
            else:
                exec(compile(script, "<string>", "exec"), {"__name__": "__main__"})
            code = 0
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                sys.stderr.write(f"{exc.code}\n")
    except BaseException:  # what the interpreter would print for an uncaught exception
        traceback.print_exc()
    finally:
        with suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _print_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    """What a fresh interpreter's `warnings.showwarning` does: the warning on stderr."""
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@dataclass(frozen=True)
class Mistake:
    """One operator mistake: the files present, the command, and what it must answer."""

    name: str
    files: dict[str, str]
    args: tuple[str, ...]
    code: int
    #: fragments the message must hold: what went wrong, and what to do
    says: tuple[str, ...]
    #: files the command may create (nothing existing may change)
    creates: frozenset[str] = field(default_factory=frozenset)


FILE_MISTAKES = [
    Mistake(
        "demo into a non-empty directory it did not make",
        {"precious.txt": "keep me\n", ".git/HEAD": "ref: refs/heads/main\n"},
        ("demo", "--dir", "."),
        2,
        ("not empty and was not made by `bulkrt demo`", "name a new directory"),
    ),
    Mistake(
        "rollback --out over an existing file",
        {"ledger.jsonl": LEDGER_LINE, "notes.csv": "mine\n"},
        ("rollback", "ledger.jsonl", "--out", "notes.csv"),
        2,
        ("notes.csv exists", "--force replaces it", "nothing written"),
    ),
    Mistake(
        "rollback --out over the campaign's own job file",
        {"ledger.jsonl": LEDGER_LINE, "spring.csv": JOB},
        ("rollback", "ledger.jsonl", "--out", "spring.csv"),
        2,
        ("spring.csv is a bulkrt job file holding retweet rows", "only an earlier undo job"),
    ),
    Mistake(
        "rollback --out over the campaign's own job file, even with --force",
        {"ledger.jsonl": LEDGER_LINE, "spring.csv": JOB},
        ("rollback", "ledger.jsonl", "--out", "spring.csv", "--force"),
        2,
        ("is a bulkrt job file holding retweet rows", "even with --force", "nothing written"),
    ),
    Mistake(
        "rollback --out over a JSONL job holding retweet rows, even with --force",
        {"ledger.jsonl": LEDGER_LINE, "spring.jsonl": JSONL_JOB},
        ("rollback", "ledger.jsonl", "--out", "spring.jsonl", "--force"),
        2,
        ("is a bulkrt job file holding retweet rows",),
    ),
    Mistake(
        "rollback --out over a job mixing undo and retweet rows, even with --force",
        {"ledger.jsonl": LEDGER_LINE, "mixed.csv": UNDO_JOB + "acct001,21,retweet,spring\n"},
        ("rollback", "ledger.jsonl", "--out", "mixed.csv", "--force"),
        2,
        ("is a bulkrt job file holding retweet rows",),
    ),
    Mistake(
        "rollback --out over the ledger's journal, even with --force",
        {"ledger.jsonl": LEDGER_LINE, "ledger.jsonl.sent": JOURNAL_LINE},
        ("rollback", "ledger.jsonl", "--out", "ledger.jsonl.sent", "--force"),
        2,
        ("is a ledger's journal (<ledger>.sent)", "never writes over one, even with --force"),
    ),
    Mistake(
        "report --html over the ledger's journal, even with --force",
        {"ledger.jsonl": LEDGER_LINE, "ledger.jsonl.sent": JOURNAL_LINE},
        ("report", "ledger.jsonl", "--html", "ledger.jsonl.sent", "--force"),
        2,
        ("is a ledger's journal (<ledger>.sent)", "never writes over one, even with --force"),
    ),
    Mistake(
        "report --html over another ledger's empty journal, even with --force",
        {"ledger.jsonl": LEDGER_LINE, "old.jsonl": LEDGER_LINE, "old.jsonl.sent": ""},
        ("report", "ledger.jsonl", "--html", "old.jsonl.sent", "--force"),
        2,
        ("is a ledger's journal (<ledger>.sent)",),
    ),
    Mistake(
        "report --html over a journal whose ledger is gone, even with --force",
        {"ledger.jsonl": LEDGER_LINE, "gone.jsonl.sent": JOURNAL_LINE},
        ("report", "ledger.jsonl", "--html", "gone.jsonl.sent", "--force"),
        2,
        ("is a ledger's journal (<ledger>.sent)",),
    ),
    Mistake(
        "report --html over the ledger's lock, even with --force",
        {"ledger.jsonl": LEDGER_LINE, "ledger.jsonl.lock": ""},
        ("report", "ledger.jsonl", "--html", "ledger.jsonl.lock", "--force"),
        2,
        ("is the lock of a ledger or accounts file", "never writes over one"),
    ),
    Mistake(
        "report --html over a job file, even with --force",
        {"ledger.jsonl": LEDGER_LINE, "spring.csv": JOB},
        ("report", "ledger.jsonl", "--html", "spring.csv", "--force"),
        2,
        ("spring.csv is a bulkrt job file", "does not replace one, even with --force"),
    ),
    Mistake(
        "report --html over an undo job, even with --force",
        {"ledger.jsonl": LEDGER_LINE, "undo.csv": UNDO_JOB},
        ("report", "ledger.jsonl", "--html", "undo.csv", "--force"),
        2,
        ("undo.csv is an undo job file", "does not replace one, even with --force"),
    ),
    Mistake(
        "report --html over an accounts file, even with --force",
        {"ledger.jsonl": LEDGER_LINE, "accounts.json": ACCOUNTS},
        ("report", "ledger.jsonl", "--html", "accounts.json", "--force"),
        2,
        ("is a bulkrt accounts file", "never writes over one, even with --force"),
    ),
    Mistake(
        "expand --out over a ledger's journal, even with --force",
        {"ledger.jsonl": LEDGER_LINE, "ledger.jsonl.sent": JOURNAL_LINE},
        (
            "expand",
            "--accounts",
            "acct001",
            "--tweets",
            "20",
            "--campaign",
            "c",
            "--out",
            "ledger.jsonl.sent",
            "--force",
        ),
        2,
        ("is a ledger's journal (<ledger>.sent)",),
    ),  # fmt: skip
    Mistake(
        "status of a ledger's journal",
        {"ledger.jsonl": LEDGER_LINE, "ledger.jsonl.sent": JOURNAL_LINE},
        ("status", "ledger.jsonl.sent"),
        2,
        ("ledger.jsonl.sent is a ledger's journal (<ledger>.sent), not a ledger",),
    ),
    Mistake(
        "rollback of a ledger's journal",
        {"ledger.jsonl": LEDGER_LINE, "ledger.jsonl.sent": JOURNAL_LINE},
        ("rollback", "ledger.jsonl.sent", "--out", "undo.csv"),
        2,
        ("ledger.jsonl.sent is a ledger's journal (<ledger>.sent), not a ledger",),
    ),
    Mistake(
        "rollback --out over the ledger it reads, even with --force",
        {"ledger.jsonl": LEDGER_LINE},
        ("rollback", "ledger.jsonl", "--out", "ledger.jsonl", "--force"),
        2,
        ("that is the ledger's own file", "name another file"),
    ),
    Mistake(
        "rollback --out over another ledger, even with --force",
        {"ledger.jsonl": LEDGER_LINE, "old.jsonl": LEDGER_LINE},
        ("rollback", "ledger.jsonl", "--out", "old.jsonl", "--force"),
        2,
        ("is a bulkrt ledger", "never writes over one, even with --force"),
    ),
    Mistake(
        "rollback --out over an accounts file, even with --force",
        {"ledger.jsonl": LEDGER_LINE, "accounts.csv": ACCOUNTS},
        ("rollback", "ledger.jsonl", "--out", "accounts.csv", "--force"),
        2,
        ("is a bulkrt accounts file", "name another file"),
    ),
    Mistake(
        "report --html over an existing page",
        {"ledger.jsonl": LEDGER_LINE, "report.html": "<p>last week's</p>\n"},
        ("report", "ledger.jsonl", "--html", "report.html"),
        2,
        ("report.html exists", "--force replaces it"),
    ),
    Mistake(
        "report --html over the ledger, even with --force",
        {"ledger.jsonl": LEDGER_LINE},
        ("report", "ledger.jsonl", "--html", "ledger.jsonl", "--force"),
        2,
        ("that is the ledger it reads",),
    ),
    Mistake(
        "expand --out over the accounts file it checks names against, even with --force",
        {"accounts.json": ACCOUNTS},
        (
            "expand",
            "--accounts",
            "acct001",
            "--tweets",
            "20",
            "--campaign",
            "c",
            "--out",
            "accounts.json",
            "--accounts-file",
            "accounts.json",
            "--force",
        ),
        2,
        ("that is the --accounts-file it reads",),
    ),  # fmt: skip
    Mistake(
        "expand --out over a ledger, even with --force",
        {"ledger.jsonl": LEDGER_LINE},
        (
            "expand",
            "--accounts",
            "acct001",
            "--tweets",
            "20",
            "--campaign",
            "c",
            "--out",
            "ledger.jsonl",
            "--force",
        ),
        2,
        ("is a bulkrt ledger", "never writes over one"),
    ),  # fmt: skip
    Mistake(
        "sandbox --accounts-out over a job file",
        {"spring.csv": JOB},
        ("sandbox", "--accounts-out", "spring.csv", "--port", "0"),
        2,
        ("spring.csv is a bulkrt job file", "does not replace one"),
    ),
    Mistake(
        "sandbox --accounts-out over a job file, even with --force",
        {"spring.csv": JOB},
        ("sandbox", "--accounts-out", "spring.csv", "--port", "0", "--force"),
        2,
        ("spring.csv is a bulkrt job file", "even with --force"),
    ),
    Mistake(
        "sandbox --accounts-out over an operator's accounts file, even with --force",
        {"accounts.json": ACCOUNTS},
        ("sandbox", "--accounts-out", "accounts.json", "--port", "0", "--force"),
        2,
        ("accounts.json is a bulkrt accounts file", "never writes over one, even with --force"),
    ),
    Mistake(
        "sandbox --accounts-out over a ledger's journal, even with --force",
        {"ledger.jsonl": LEDGER_LINE, "ledger.jsonl.sent": JOURNAL_LINE},
        ("sandbox", "--accounts-out", "ledger.jsonl.sent", "--port", "0", "--force"),
        2,
        ("is a ledger's journal (<ledger>.sent)",),
    ),
    Mistake(
        "sandbox --accounts-out over a ledger, even with --force",
        {"ledger.jsonl": LEDGER_LINE},
        ("sandbox", "--accounts-out", "ledger.jsonl", "--port", "0", "--force"),
        2,
        ("is a bulkrt ledger",),
    ),
    Mistake(
        "the ledger given as the job of a run",
        {"ledger.jsonl": LEDGER_LINE, "accounts.json": ACCOUNTS},
        (
            "run",
            "ledger.jsonl",
            "--accounts",
            "accounts.json",
            "--ledger",
            "out.jsonl",
            "--dry-run",
        ),
        2,
        ("ledger.jsonl:1", "this is a bulkrt ledger", "not a job", "bulkrt rollback LEDGER"),
    ),  # fmt: skip
    Mistake(
        "the job file given as the ledger",
        {"spring.csv": JOB, "accounts.json": ACCOUNTS},
        ("run", "spring.csv", "--accounts", "accounts.json", "--ledger", "./spring.csv"),
        2,
        ("--ledger spring.csv: that is the job spring.csv", "name the campaign's ledger"),
    ),
    Mistake(
        "the accounts file given as the ledger",
        {"spring.csv": JOB, "accounts.json": ACCOUNTS},
        ("run", "spring.csv", "--accounts", "accounts.json", "--ledger", "accounts.json"),
        2,
        ("that is the accounts file", "nothing was sent"),
    ),
    Mistake(
        "another campaign's job file given as the ledger",
        {"spring.csv": JOB, "autumn.csv": JOB, "accounts.json": ACCOUNTS},
        ("run", "spring.csv", "--accounts", "accounts.json", "--ledger", "autumn.csv"),
        2,
        ("exists and is a bulkrt job file", "name a new file or the campaign's ledger"),
    ),
    Mistake(
        "a notes file given as the ledger",
        {"spring.csv": JOB, "notes.txt": "call Bob\n", "accounts.json": ACCOUNTS},
        ("run", "spring.csv", "--accounts", "accounts.json", "--ledger", "notes.txt"),
        2,
        ("exists and is not a bulkrt ledger",),
    ),
    Mistake(
        "a ledger's lock given as the ledger of a run",
        {"spring.csv": JOB, "accounts.json": ACCOUNTS, "l.jsonl": LEDGER_LINE, "l.jsonl.lock": ""},
        ("run", "spring.csv", "--accounts", "accounts.json", "--ledger", "l.jsonl.lock"),
        2,
        ("--ledger l.jsonl.lock: is the lock of l.jsonl", "name the campaign's ledger"),
    ),
    Mistake(
        "the accounts file's lock given as the ledger of a run",
        {"spring.csv": JOB, "accounts.json": ACCOUNTS, "accounts.json.lock": ""},
        ("run", "spring.csv", "--accounts", "accounts.json", "--ledger", "accounts.json.lock"),
        2,
        ("is the lock of accounts.json", "nothing was sent"),
    ),
    Mistake(
        "a lock holding ledger lines given as the ledger of a run",
        {"spring.csv": JOB, "accounts.json": ACCOUNTS, "l.jsonl": "", "l.jsonl.lock": LEDGER_LINE},
        ("run", "spring.csv", "--accounts", "accounts.json", "--ledger", "l.jsonl.lock"),
        2,
        ("is the lock of l.jsonl",),
    ),
    Mistake(
        "a ledger's journal given as the ledger of a run",
        {"spring.csv": JOB, "accounts.json": ACCOUNTS, "l.jsonl": LEDGER_LINE, "l.jsonl.sent": ""},
        ("run", "spring.csv", "--accounts", "accounts.json", "--ledger", "l.jsonl.sent"),
        2,
        ("is the journal of l.jsonl", "(<ledger>.sent)"),
    ),
    Mistake(
        "a journal whose ledger is gone given as the ledger of a run",
        {"spring.csv": JOB, "accounts.json": ACCOUNTS, "gone.jsonl.sent": JOURNAL_LINE},
        ("run", "spring.csv", "--accounts", "accounts.json", "--ledger", "gone.jsonl.sent"),
        2,
        ("exists and is a ledger's journal",),
    ),
    Mistake(
        "a ledger's lock given as the ledger of a dry run",
        {"spring.csv": JOB, "accounts.json": ACCOUNTS, "l.jsonl": LEDGER_LINE, "l.jsonl.lock": ""},
        (
            "run",
            "spring.csv",
            "--accounts",
            "accounts.json",
            "--ledger",
            "l.jsonl.lock",
            "--dry-run",
        ),
        2,
        ("is the lock of l.jsonl",),
    ),
    Mistake(
        "the accounts file given as the ledger of validate",
        {"spring.csv": JOB, "accounts.json": ACCOUNTS},
        ("validate", "spring.csv", "--accounts", "accounts.json", "--ledger", "accounts.json"),
        2,
        ("--ledger: that is the accounts file", "name the campaign's ledger"),
    ),
    Mistake(
        "a job file given as the ledger of validate",
        {"spring.csv": JOB, "autumn.csv": JOB, "accounts.json": ACCOUNTS},
        ("validate", "spring.csv", "--accounts", "accounts.json", "--ledger", "autumn.csv"),
        2,
        ("autumn.csv: --ledger: exists and is a bulkrt job file",),
    ),
    Mistake(
        "a ledger's lock given as the ledger of validate",
        {"spring.csv": JOB, "accounts.json": ACCOUNTS, "l.jsonl": LEDGER_LINE, "l.jsonl.lock": ""},
        ("validate", "spring.csv", "--accounts", "accounts.json", "--ledger", "l.jsonl.lock"),
        2,
        ("is the lock of l.jsonl",),
    ),
    Mistake(
        "a ledger's journal given as the ledger of validate",
        {"spring.csv": JOB, "accounts.json": ACCOUNTS, "l.jsonl": LEDGER_LINE, "l.jsonl.sent": ""},
        ("validate", "spring.csv", "--accounts", "accounts.json", "--ledger", "l.jsonl.sent"),
        2,
        ("is the journal of l.jsonl",),
    ),
    Mistake(
        "status of a ledger's empty lock",
        {"l.jsonl": LEDGER_LINE, "l.jsonl.lock": ""},
        ("status", "l.jsonl.lock"),
        2,
        ("l.jsonl.lock is the lock of l.jsonl", "give the --ledger file of the run"),
    ),
    Mistake(
        "report of a ledger's empty journal",
        {"l.jsonl": LEDGER_LINE, "l.jsonl.sent": ""},
        ("report", "l.jsonl.sent", "--html", "r.html"),
        2,
        ("l.jsonl.sent is the journal of l.jsonl",),
    ),
    Mistake(
        "an overflowing --price-undo",
        {"spring.csv": JOB, "accounts.json": ACCOUNTS},
        (
            "run",
            "spring.csv",
            "--accounts",
            "accounts.json",
            "--ledger",
            "l.jsonl",
            "--dry-run",
            "--price-undo",
            "1e999999999",
        ),
        2,
        ("Invalid value for '--price-undo'", "more than 1000 dollars per request"),
    ),
    Mistake(
        "a 400-digit --price-retweet",
        {"spring.csv": JOB, "accounts.json": ACCOUNTS},
        (
            "run",
            "spring.csv",
            "--accounts",
            "accounts.json",
            "--ledger",
            "l.jsonl",
            "--dry-run",
            "--price-retweet",
            "1e400",
        ),
        2,
        ("Invalid value for '--price-retweet'", "more than 1000 dollars"),
    ),
    Mistake(
        "a negative --price-undo",
        {"spring.csv": JOB, "accounts.json": ACCOUNTS},
        (
            "run",
            "spring.csv",
            "--accounts",
            "accounts.json",
            "--ledger",
            "l.jsonl",
            "--dry-run",
            "--price-undo",
            "-0.5",
        ),
        2,
        ("Invalid value for '--price-undo'", "cannot be negative"),
    ),
    Mistake(
        "a --price-retweet that is not a number",
        {"spring.csv": JOB, "accounts.json": ACCOUNTS},
        (
            "run",
            "spring.csv",
            "--accounts",
            "accounts.json",
            "--ledger",
            "l.jsonl",
            "--dry-run",
            "--price-retweet",
            "nan",
        ),
        2,
        ("Invalid value for '--price-retweet'", "'nan' is not a price in dollars"),
    ),
    Mistake(
        "a --price-undo finer than a trillionth of a dollar",
        {"spring.csv": JOB, "accounts.json": ACCOUNTS},
        (
            "run",
            "spring.csv",
            "--accounts",
            "accounts.json",
            "--ledger",
            "l.jsonl",
            "--dry-run",
            "--price-undo",
            "1e-999999999",
        ),
        2,
        ("Invalid value for '--price-undo'", "finer than 0.000000000001 dollars"),
    ),
    Mistake(
        "status of a job file",
        {"spring.csv": JOB},
        ("status", "spring.csv"),
        2,
        ("spring.csv is a bulkrt job file, not a ledger", "give the --ledger file of the run"),
    ),
    Mistake(
        "report of a job file",
        {"spring.csv": JOB},
        ("report", "spring.csv", "--html", "spring.html"),
        2,
        ("spring.csv is a bulkrt job file, not a ledger",),
    ),
    Mistake(
        "rollback of the accounts file",
        {"accounts.json": ACCOUNTS},
        ("rollback", "accounts.json", "--out", "undo.csv"),
        2,
        ("accounts.json is a bulkrt accounts file, not a ledger",),
    ),
    Mistake(
        "the ledger given as the job of validate",
        {"ledger.jsonl": LEDGER_LINE, "accounts.json": ACCOUNTS},
        ("validate", "ledger.jsonl", "--accounts", "accounts.json"),
        2,
        ("ledger.jsonl:1", "this is a bulkrt ledger", "give the campaign's job file"),
    ),
]


@pytest.mark.parametrize("mistake", FILE_MISTAKES, ids=lambda m: m.name)
def test_a_mistake_costs_a_message_and_no_file(mistake: Mistake, tmp_path: Path) -> None:
    """The command exits with its code, says what went wrong and what to do, and every file
    that was there is still there, byte for byte, with no new file beside them."""
    for name, text in mistake.files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    before = snapshot(tmp_path)
    done = bulkrt(*mistake.args, cwd=tmp_path)
    message = done.stdout + done.stderr
    assert done.returncode == mistake.code, message
    for fragment in mistake.says:
        assert fragment in message, message
    assert "Traceback" not in message
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before
    assert set(after) - set(before) <= mistake.creates
    assert set(after) - set(before) <= mistake.creates


FORCED: list[tuple[str, Callable[[Path], tuple[str, ...]]]] = [
    ("rollback", lambda d: ("rollback", "ledger.jsonl", "--out", "undo.csv", "--force")),
    ("report", lambda d: ("report", "ledger.jsonl", "--html", "undo.csv", "--force")),
    ("expand", lambda d: ("expand", "--accounts", "acct001", "--tweets", "20", "--campaign",
                          "c", "--out", "undo.csv", "--force")),
]  # fmt: skip


@pytest.mark.parametrize(("name", "args"), FORCED, ids=[name for name, _ in FORCED])
def test_force_replaces_an_ordinary_file(
    name: str, args: Callable[[Path], tuple[str, ...]], tmp_path: Path
) -> None:
    """With --force an existing file that is no ledger, accounts file or input is replaced."""
    (tmp_path / "ledger.jsonl").write_text(LEDGER_LINE)
    (tmp_path / "undo.csv").write_text("old\n")
    done = bulkrt(*args(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "undo.csv").read_text() != "old\n"
    assert (tmp_path / "ledger.jsonl").read_text() == LEDGER_LINE


FORCED_OVER_OWN_KIND = [
    ("rollback over an earlier undo job", UNDO_JOB,
     ("rollback", "ledger.jsonl", "--out", "undo.csv", "--force")),
    ("expand over a job file", JOB,
     ("expand", "--accounts", "acct001", "--tweets", "21", "--campaign", "c", "--out", "undo.csv",
      "--force")),
    ("expand over an undo job", UNDO_JOB,
     ("expand", "--accounts", "acct001", "--tweets", "21", "--campaign", "c", "--out", "undo.csv",
      "--force")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "old", "args"), FORCED_OVER_OWN_KIND, ids=[n for n, _, _ in FORCED_OVER_OWN_KIND]
)
def test_force_replaces_a_file_of_the_kind_the_command_writes(
    name: str, old: str, args: tuple[str, ...], tmp_path: Path
) -> None:
    """With --force, rollback replaces an earlier undo job and expand a job file."""
    (tmp_path / "ledger.jsonl").write_text(LEDGER_LINE)
    (tmp_path / "undo.csv").write_text(old)
    done = bulkrt(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "undo.csv").read_text() not in ("", old)
    assert (tmp_path / "ledger.jsonl").read_text() == LEDGER_LINE


def test_sandbox_force_replaces_only_the_accounts_file_a_sandbox_wrote(tmp_path: Path) -> None:
    """`sandbox --accounts-out --force` replaces a file an earlier sandbox wrote (its marker
    kept, the new file loads), while the same file without the marker is refused above."""
    from bulkrt.commands.sandbox import write_accounts_file
    from bulkrt.shell.accounts import load_accounts

    path = tmp_path / "accounts.json"
    write_accounts_file(path, {"accounts": {"old": {"user_id": "1", "oauth1": {
        "consumer_key": "ck", "consumer_secret": "cs", "access_token": "at",
        "access_token_secret": "ats"}}}})  # fmt: skip
    assert "old" in load_accounts(path).by_name  # the marker does not bother the loader
    with subprocess.Popen(
        [sys.executable, "-m", "bulkrt", "sandbox", "--port", "0", "--users", "2",
         "--accounts-out", "accounts.json", "--force"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as server:  # fmt: skip
        assert server.stdout is not None
        line = server.stdout.readline()
        server.send_signal(signal.SIGINT)
        _, errors = server.communicate(timeout=30)
    assert "listening on" in line, line + errors
    accounts = load_accounts(path)
    assert "old" not in accounts.by_name and len(accounts.by_name) == 2
    assert json.loads(path.read_text())["written_by"] == "bulkrt sandbox"


def test_demo_reruns_in_its_own_directory_and_keeps_what_it_did_not_write(
    tmp_path: Path,
) -> None:
    """The demo runs a campaign, rolls it back and finds every account as it was before; it
    prints run commands complete enough to run as shown (here as a dry run, its sandbox being
    gone); a second demo in the directory the first made rewrites its own files and leaves an
    operator's file there alone. Both run short jobs of their own (``--job``): the example
    campaign's windows take seconds, and its run is checked where the README runs the demo as
    written (`tests/test_readme.py`)."""
    short = tmp_path / "short.csv"
    short.write_text("account,tweet_id,action\nacct001,1,retweet\nacct002,2,retweet\n")
    first = bulkrt("demo", "--dir", "demo", "--job", str(short), cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2 items: 2 ok" in first.stdout
    assert "every account's retweets are as before the campaign: yes" in first.stdout
    # the two retweets and their two undos
    assert (tmp_path / "demo" / "ledger.jsonl").read_text().count("\n") == 4
    shown = next(line for line in first.stdout.splitlines() if line.startswith("== the campaign"))
    command = shlex.split(shown.split(": ", 1)[1])
    assert command[:2] == ["bulkrt", "run"] and "--accounts" in command
    planned = bulkrt(*command[1:], "--dry-run", cwd=tmp_path)  # as printed, minus the sandbox
    assert planned.returncode == 0, planned.stderr
    assert "already finished in the ledger" in planned.stdout
    (tmp_path / "demo" / "mine.txt").write_text("keep\n")
    shorter = tmp_path / "shorter.csv"
    shorter.write_text("account,tweet_id,action\nacct003,3,retweet\n")
    again = bulkrt("demo", "--dir", "demo", "--job", str(shorter), cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "every account's retweets are as before the campaign: yes" in again.stdout
    assert (tmp_path / "demo" / "mine.txt").read_text() == "keep\n"
    # one retweet and its undo: the first demo's 4 lines are gone, not added to
    assert (tmp_path / "demo" / "ledger.jsonl").read_text().count("\n") == 2


OPTION_MISTAKES = [
    ("--read-timeout", "nan", "'nan' is not a finite number"),
    ("--read-timeout", "-1", "is not in the range 0<x<=600"),
    ("--connect-timeout", "0", "is not in the range 0<x<=600"),
    ("--window", "inf", "'inf' is not a finite number"),
    ("--window", "0", "is not in the range x>=0.001"),
    ("--limit", "0", "is not in the range x>=1"),
    ("--grace", "nan", "'nan' is not a finite number"),
    ("--backoff-initial", "-1", "is not in the range 0<=x<=3600"),
    ("--backoff-max", "nan", "'nan' is not a finite number"),
    ("--max-rps", "0", "is not in the range x>=0.01"),
    ("--concurrency", "0", "is not in the range x>=1"),
    ("--max-attempts", "-3", "is not in the range x>=1"),
    ("--price-retweet", "nan", "not a price in dollars"),
    ("--price-undo", "-0.01", "a price cannot be negative"),
    ("--api-base", "127.0.0.1:8787", "has no scheme: give http://127.0.0.1:8787"),
    ("--api-base", "https://api.x.com/2/", "ends in the API's own path '/2'"),
    ("--api-base", "https://api.x.com/v2", "give https://api.x.com"),
    ("--api-base", "http://api.example.com", "plain http to another machine"),
    ("--api-base", "ftp://api.x.com", "the scheme must be https"),
]


@pytest.mark.parametrize(
    ("option", "value", "says"), OPTION_MISTAKES, ids=[f"{o} {v}" for o, v, _ in OPTION_MISTAKES]
)
def test_a_bad_option_value_exits_2_naming_the_option(
    option: str, value: str, says: str, tmp_path: Path
) -> None:
    """A value out of range, not finite or not usable exits 2 naming the option and what is
    wrong, before any file is read or written."""
    (tmp_path / "spring.csv").write_text(JOB)
    (tmp_path / "accounts.json").write_text(ACCOUNTS)
    before = snapshot(tmp_path)
    done = bulkrt(
        "run", "spring.csv", "--accounts", "accounts.json", "--ledger", "ledger.jsonl",
        "--no-progress", f"{option}={value}", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"Invalid value for '{option}'" in done.stderr
    assert says in done.stderr
    assert snapshot(tmp_path) == before


def test_a_bad_api_base_from_the_environment_says_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forgotten BULKRT_API_BASE with the API's path in it is refused, naming the variable."""
    monkeypatch.setenv("BULKRT_API_BASE", "http://127.0.0.1:8787/2")  # the child's environment
    done = bulkrt("run", "spring.csv", "--accounts", "a.json", "--ledger", "l.jsonl", cwd=tmp_path)
    assert done.returncode == 2
    assert "(from BULKRT_API_BASE)" in done.stderr
    assert "give http://127.0.0.1:8787" in done.stderr


def test_plain_http_elsewhere_is_accepted_when_asked(tmp_path: Path) -> None:
    """--allow-insecure-http lets a plain http base on another host through to the input checks."""
    done = bulkrt(
        "run", "missing.csv", "--accounts", "a.json", "--ledger", "l.jsonl",
        "--api-base", "http://api.example.com", "--allow-insecure-http", cwd=tmp_path,
    )  # fmt: skip
    assert "--api-base" not in done.stderr
    assert "a.json" in done.stderr


# -- odd servers: the first answers prove the API base wrong -----------------------------------


#: the sandbox's OAuth 2.0 users (even ones)
OAUTH2 = tuple(NAMES[1::2])


def expire_oauth2_tokens(accounts: Path) -> None:
    """Make every OAuth 2.0 access token in ``accounts`` expired, so it must be refreshed."""
    data = json.loads(accounts.read_text())
    for entry in data["accounts"].values():
        if "oauth2" in entry:
            entry["oauth2"]["expires_at"] = "2020-01-01T00:00:00Z"
    accounts.write_text(json.dumps(data))


@dataclass(frozen=True)
class OddServer:
    """An API base that cannot be the X API, and what the run must say about it."""

    name: str
    #: the base, given the sandbox's URL and the URL of a server answering HTML pages
    base: Callable[[str, str], str]
    says: tuple[str, ...]
    #: the job's accounts
    accounts: tuple[str, ...] = tuple(NAMES)
    #: the OAuth 2.0 access tokens in the accounts file have expired: the first thing each
    #: account sends is a token refresh
    expired: bool = False


ODD_SERVERS = [
    OddServer(
        "nothing listening",
        lambda sandbox, html: "http://127.0.0.1:9",
        ("no connection to the API base at http://127.0.0.1:9", "check --api-base"),
    ),
    OddServer(
        "a host name that does not resolve",
        lambda sandbox, html: "https://no-such-host.invalid",
        ("host name does not resolve", "https://no-such-host.invalid"),
    ),
    OddServer(
        "the sandbox under a path it does not serve (a 404 page)",
        lambda sandbox, html: f"{sandbox}/api",
        ("an answer that is not the X API's", "HTTP 404", "/api\n"),
    ),
    OddServer(
        "a proxy answering an HTML 403 page",
        lambda sandbox, html: html,
        ("an answer that is not the X API's", "HTTP 403 with an HTML page"),
    ),
    OddServer(
        "a server that redirects (plain HTTP sent on to HTTPS, a moved host)",
        lambda sandbox, html: f"{html}/moved",
        ("an answer that is not the X API's", "HTTP 302 (Found): a redirect"),
    ),
    OddServer(
        "nothing listening for the token refresh of OAuth 2.0 accounts",
        lambda sandbox, html: "http://127.0.0.1:9",
        (
            "no connection to the API base at http://127.0.0.1:9",
            "token refresh",
            "check --api-base",
        ),
        accounts=OAUTH2,
        expired=True,
    ),
    OddServer(
        "a 404 page for the token refresh of OAuth 2.0 accounts",
        lambda sandbox, html: f"{sandbox}/api",
        ("an answer that is not the X API's", "token refresh", "HTTP 404", "/api\n"),
        accounts=OAUTH2,
        expired=True,
    ),
    OddServer(
        "a proxy's HTML 403 page for the token refresh of OAuth 2.0 accounts",
        lambda sandbox, html: html,
        ("an answer that is not the X API's", "token refresh", "HTML"),
        accounts=OAUTH2,
        expired=True,
    ),
]


@pytest.fixture
async def html_server() -> AsyncIterator[str]:
    """A server that answers every request with a proxy's HTML 403 page, or a redirect under
    /moved; yields its URL."""
    from aiohttp import web

    async def refuse(request: web.Request) -> web.Response:
        if request.path.startswith("/moved"):
            raise web.HTTPFound("https://example.invalid" + request.path_qs)
        return web.Response(status=403, text="<html>Forbidden</html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.mark.parametrize("server", ODD_SERVERS, ids=lambda s: s.name)
async def test_a_wrong_api_base_stops_early_and_loses_nothing(
    server: OddServer, make_world: MakeWorld, html_server: str
) -> None:
    """The run stops after the first answers with exit 3, naming the cause and the base; no item
    is marked ok or rejected, and the same job against the right base then sends everything."""
    world = await make_world()
    if server.expired:
        expire_oauth2_tokens(world.accounts)
    accounts = list(server.accounts)
    job = world.job(rows(accounts, 4))
    args = world.run_args(job)
    args[args.index("--api-base") + 1] = server.base(world.sandbox.url, html_server)
    wrong = await run_cli(args)
    out = wrong.stdout.decode() + wrong.stderr.decode()
    assert wrong.returncode == 3, out
    for fragment in server.says:
        assert fragment in out, out
    assert "Traceback" not in out
    assert {line["status"] for line in world.lines()} <= {"error"}
    requests = int(re.search(r"(\d+) requests", out).group(1))  # type: ignore[union-attr]
    assert requests <= len(accounts), out  # one per account at most: slow start, then the stop
    assert "needs attention" not in out, out  # the base is the cause, not the accounts
    right = await world.run(job)
    assert right.returncode == 0, right.stdout.decode() + right.stderr.decode()
    for account in accounts:
        assert world.retweets(account) == {str(100 + n) for n in range(4)}


async def test_a_sandbox_like_xs_emulator_finishes_with_every_item_ok(
    make_world: MakeWorld,
) -> None:
    """Against static `15 / 14 / now+900` headers on every 5xx, limiting off, the run learns no
    limit from them: every item ends ok and no account ever waits for a window."""
    faults = {FaultKind.E500: 0.2, FaultKind.E503: 0.1}
    world = await make_world(
        unlimited=True, rate_limit_headers=RateLimitHeaders.STATIC, fault_rates=faults, seed=3
    )
    args = world.run_args(world.job(rows(NAMES, 30)), "--max-attempts", "20", "-v")
    args[args.index("--limit") + 1] = "100"
    args[args.index("--window") + 1] = "600"
    done = await run_cli(args)
    out = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, out
    assert {line["status"] for line in world.lines()} == {"ok"}
    assert len(world.lines()) == 180
    assert world.sandbox.state.stats()["by_fault"]["500"] > 15  # more than the static limit
    assert "rate_limited" not in out and "account_parked" not in out
    for account in NAMES:
        assert world.retweets(account) == {str(100 + n) for n in range(30)}


def test_run_json_on_bad_input_prints_what_validate_json_prints(tmp_path: Path) -> None:
    """`run --json` that exits 2 on a bad row prints on stdout the very JSON document
    `validate --json` prints for the same input, and for a refused --ledger the same shape
    naming the option; nothing is written."""
    (tmp_path / "spring.csv").write_text(JOB + "acct001,abc,retweet\n")
    (tmp_path / "accounts.json").write_text(ACCOUNTS)
    (tmp_path / "accounts.json").chmod(0o600)
    common = ("spring.csv", "--accounts", "accounts.json", "--json")
    checked = bulkrt("validate", *common, cwd=tmp_path)
    ran = bulkrt("run", *common, "--ledger", "l.jsonl", cwd=tmp_path)
    assert checked.returncode == ran.returncode == 2, ran.stderr
    document = json.loads(checked.stdout)
    assert document["ok"] is False and document["problems"] == 1
    assert json.loads(ran.stdout) == document
    refused = bulkrt("run", *common, "--ledger", "accounts.json", cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    shown = json.loads(refused.stdout)
    assert shown["ok"] is False and shown["problems"] == 1
    assert shown["first"][0]["field"] == "--ledger"
    assert "that is the accounts file" in shown["first"][0]["message"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accounts.json", "spring.csv"]
