"""Start-up loads only what the command needs: what a fresh `bulkrt` process has imported by its
exit, per command, and that `bulkrt --help` lists the commands without importing them exactly as
click would by importing them. (How long it takes is `bench/startup_bench.py`'s to measure.)"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import click
import pytest

from bulkrt.cli import COMMANDS, main
from bulkrt.core.items import Action, Status
from bulkrt.ledger.record import LedgerRecord

#: what a command that neither sends nor serves must not load: the HTTP client and server, the
#: sandbox, Redis, rich's traceback (structlog's, for exceptions it never logs), the runner
NOT_FOR_READING = ("aiohttp", "bulkrt.sandbox", "redis", "rich.traceback", "bulkrt.shell.runner")
#: what `bulkrt run` must not load: the sandbox's server (its estimate simulates the job on the
#: sandbox's pure state), an HTTP server, Redis without --redis, rich's traceback
NOT_FOR_RUNNING = ("bulkrt.sandbox.server", "aiohttp.web", "redis", "rich.traceback")

ACCOUNTS = ("acct001", "acct002", "acct003")


def loaded(tmp_path: Path, *args: str) -> tuple[int, str, set[str]]:
    """Run ``python -m bulkrt ARGS`` in a fresh interpreter: its exit code, its stdout and every
    module it had imported when it exited."""
    dump = tmp_path / "modules.json"
    write = f"open({str(dump)!r}, 'w').write(json.dumps(sorted(sys.modules)))"
    script = (
        "import atexit, json, runpy, sys\n"
        f"atexit.register(lambda: {write})\n"
        f"sys.argv = ['bulkrt', *{list(args)!r}]\n"
        "runpy.run_module('bulkrt', run_name='__main__', alter_sys=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    return done.returncode, done.stdout + done.stderr, set(json.loads(dump.read_text()))


def under(modules: set[str], *packages: str) -> list[str]:
    """The modules that are one of ``packages`` or inside one."""
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in packages))


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    """A job of 6 retweets over 3 OAuth 1.0a accounts, its accounts file, a 60-line ledger."""
    job = tmp_path / "job.csv"
    rows = [f"{account},{2_000_000_000 + n},retweet\n" for n in range(2) for account in ACCOUNTS]
    job.write_text("account,tweet_id,action\n" + "".join(rows))
    keys = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
    oauth1 = {key: f"{key}-value" for key in keys}
    accounts = tmp_path / "accounts.json"
    document = {
        name: {"user_id": str(1001 + n), "oauth1": oauth1} for n, name in enumerate(ACCOUNTS)
    }
    accounts.write_text(json.dumps({"accounts": document}))
    accounts.chmod(0o600)
    record = LedgerRecord(
        ts="2026-11-26T01:00:00Z", run="run-1", key="k", campaign="job", account="acct001",
        user_id="1001", tweet_id="20", action=Action.RETWEET, status=Status.OK, retweeted=True,
        preexisting=False, http=200, error=None, attempts=1,
    )  # fmt: skip
    ledger = tmp_path / "ledger.jsonl"
    lines = [replace(record, key=f"k{n}", account=ACCOUNTS[n % 3]) for n in range(60)]
    ledger.write_text("".join(line.to_json() + "\n" for line in lines))
    return {"job": job, "accounts": accounts, "ledger": ledger}


def test_help_imports_no_command(tmp_path: Path) -> None:
    """`bulkrt --help` lists every command while importing none of them, nor structlog, nor
    anything a command reading files would not load either."""
    code, output, modules = loaded(tmp_path, "--help")
    assert code == 0, output
    assert all(f"  {name} " in output for name in COMMANDS)
    commands = [m for m in modules if m.startswith("bulkrt.commands.")]
    assert commands + under(modules, "structlog", "importlib.metadata") == []
    assert under(modules, *NOT_FOR_READING) == []


def test_validate_loads_no_client_sandbox_redis_or_runner(
    tmp_path: Path, inputs: dict[str, Path]
) -> None:
    """`bulkrt validate` of a small job checks it (exit 0, its items counted) without loading
    the HTTP client, the sandbox, Redis, rich's traceback or the runner."""
    args = ["validate", str(inputs["job"]), "--accounts", str(inputs["accounts"])]
    code, output, modules = loaded(tmp_path, *args)
    assert code == 0, output
    assert "ok: 6 items in 1 job file(s)" in output
    assert under(modules, *NOT_FOR_READING) == []


def test_status_loads_no_client_sandbox_redis_or_runner(
    tmp_path: Path, inputs: dict[str, Path]
) -> None:
    """`bulkrt status` of a small ledger summarises it (exit 0, as JSON) without loading the HTTP
    client, the sandbox, Redis, rich's traceback or the runner."""
    code, output, modules = loaded(tmp_path, "status", str(inputs["ledger"]), "--json")
    assert code == 0, output
    assert json.loads(output)["items"] == 60
    assert under(modules, *NOT_FOR_READING) == []


@pytest.mark.parametrize("dry_run", [True, False])
def test_run_loads_no_sandbox_server_or_redis(
    tmp_path: Path, inputs: dict[str, Path], dry_run: bool
) -> None:
    """`bulkrt run` (a dry run, or a real one against a base that refuses connections, which
    stops it with exit 3) loads neither the sandbox's server nor Redis nor rich's traceback."""
    args = ["run", str(inputs["job"]), "--accounts", str(inputs["accounts"])]
    args += ["--ledger", str(tmp_path / "new.jsonl"), "--no-progress"]
    if dry_run:
        args.append("--dry-run")
    else:
        args += ["--api-base", "http://127.0.0.1:9", "--max-attempts", "1"]
    code, output, modules = loaded(tmp_path, *args)
    assert code == (0 if dry_run else 3), output
    assert under(modules, *NOT_FOR_RUNNING) == []
    assert "bulkrt.shell.runner" in modules


@pytest.mark.parametrize("width", [40, 60, 80, 120, 300])
def test_help_lists_the_commands_as_click_would_by_importing_them(width: int) -> None:
    """The Commands section of `bulkrt --help`, built from `COMMANDS` alone, is the one click
    builds from the imported commands (the same lines, names, order and summaries), at any
    terminal width."""
    ctx = click.Context(main, info_name="bulkrt")
    listed, imported = click.HelpFormatter(width=width), click.HelpFormatter(width=width)
    main.format_commands(ctx, listed)
    click.Group.format_commands(main, ctx, imported)
    assert listed.getvalue() == imported.getvalue()
    assert listed.getvalue().count("\n") == len(COMMANDS) + 1


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_listed_summary_is_the_first_paragraph_of_its_command_help(name: str) -> None:
    """Each command's summary in `COMMANDS` is its help's first paragraph, word for word, so the
    listing cannot drift from the command's own `--help`."""
    command = main.get_command(click.Context(main), name)
    assert command is not None and command.help is not None
    assert COMMANDS[name].summary.split() == command.help.split("\n\n")[0].split()


@pytest.mark.parametrize("module", ["click", "structlog"])
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_a_command_loads_is_a_clean_stop(
    tmp_path: Path, inputs: dict[str, Path], signum: signal.Signals, code: int, module: str
) -> None:
    """SIGINT or SIGTERM arriving while `bulkrt validate` imports its modules (sent by the process
    to itself the moment it first looks for click, the command line's first import, or for
    structlog, a command's) exits 130 or 143 with one line: no traceback, no click "Aborted!"."""
    finder = (
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name == {module!r}:\n"
        "            sys.meta_path.remove(self)\n"
        f"            os.kill(os.getpid(), {int(signum)})\n"
        "        return None\n"
    )
    args = ["bulkrt", "validate", str(inputs["job"]), "--accounts", str(inputs["accounts"])]
    script = (
        f"import os, runpy, sys\n{finder}sys.meta_path.insert(0, Interrupt())\n"
        f"sys.argv = {args!r}\n"
        "runpy.run_module('bulkrt', run_name='__main__', alter_sys=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert done.returncode == code, done.stderr
    assert done.stderr == (f"bulkrt: stopped by {signum.name}; the same command can be run again\n")
    assert done.stdout == ""
