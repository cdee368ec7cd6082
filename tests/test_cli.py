"""The `bulkrt` command line as an operator starts it: console script and `python -m bulkrt`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulkrt.cli import COMMANDS, main


def test_python_m_bulkrt_help_lists_the_commands_and_the_authorisation_rule() -> None:
    """`python -m bulkrt --help` exits 0 and tells the operator about account authorisation."""
    proc = subprocess.run(
        [sys.executable, "-m", "bulkrt", "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "authorisation" in proc.stdout
    assert "Commands:" in proc.stdout


def test_unknown_command_is_a_usage_error() -> None:
    """An unknown subcommand exits 2, the README's code for bad usage."""
    proc = subprocess.run(
        [sys.executable, "-m", "bulkrt", "no-such-command"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "no-such-command" in proc.stderr


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_help_ends_with_examples_of_itself(name: str) -> None:
    """`bulkrt NAME --help` ends with an Examples section whose lines run `bulkrt NAME` (or the
    command that follows it)."""
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    examples = result.output.split("Examples:\n", 1)[1].splitlines()
    assert examples and any(f"bulkrt {name}" in line for line in examples)


def _catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (its SigCgt mask in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def _run_from_stdin(tmp_path: Path, ledger: Path) -> list[str]:
    """`run`'s arguments for a job read from standard input, with an accounts file of one
    OAuth 1.0a account in ``tmp_path``."""
    accounts = tmp_path / "accounts.json"
    keys = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
    oauth1 = {key: f"{key}-value" for key in keys}
    accounts.write_text(json.dumps({"accounts": {"acme": {"user_id": "1", "oauth1": oauth1}}}))
    accounts.chmod(0o600)
    return ["run", "-", "--format", "csv", "--accounts", str(accounts), "--ledger", str(ledger)]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_before_sending_is_a_clean_stop(
    tmp_path: Path, signum: signal.Signals, code: int
) -> None:
    """SIGINT or SIGTERM while a command still loads its input (here `run` reading its job from
    a standard input that never ends) exits 130 or 143 with one line: no traceback, no click
    "Aborted!" with exit 1, no silent death."""
    ledger = tmp_path / "ledger.jsonl"
    args = _run_from_stdin(tmp_path, ledger)
    with subprocess.Popen(
        [sys.executable, "-m", "bulkrt", *args],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    ) as process:
        # bulkrt's entry point installs its SIGINT and SIGTERM handlers together; SIGTERM's is
        # the one to wait for (Python catches SIGINT itself from its first instant, before
        # bulkrt is even imported, so SIGINT's bit says nothing).
        deadline = time.monotonic() + 60
        while not _catches(process.pid, signal.SIGTERM) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # into the command, reading standard input
        process.send_signal(signum)
        # standard input stays open until the process ends (closed at once, as `communicate`
        # does, the end of the input would race the signal)
        try:
            process.wait(timeout=60)
        finally:
            process.kill()  # only if it still runs: the block's end would wait for it
        assert process.stderr is not None
        stderr = process.stderr.read()
    text = stderr.decode()
    assert process.returncode == code, text
    assert f"stopped by {signum.name}" in text
    assert "Traceback" not in text and "Aborted" not in text
    assert not ledger.exists() or ledger.read_bytes() == b""


#: a child that starts `bulkrt run -` through the console entry point with a trap: once the clean
#: stop is installed, the first cycle collection sends the process SIGTERM from inside a callback
#: of the collector, where Python prints an exception and goes on ("Exception ignored in")
_SIGNAL_IN_A_FINALIZER = """
import gc, os, signal, sys
from bulkrt import launch

def trap(phase, info):
    if phase == "start" and signal.getsignal(signal.SIGTERM) is launch.stopped:
        gc.callbacks.remove(trap)
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # bytecode to run: the handler runs here, in the callback
            pass

gc.callbacks.append(trap)
gc.set_threshold(50)
sys.argv = ["bulkrt", *sys.argv[1:]]
launch.main()
"""


def test_a_signal_whose_handler_runs_inside_a_finalizer_still_stops(tmp_path: Path) -> None:
    """SIGTERM handled while Python runs a finalizer or a collector's callback (an import's
    module-lock callback, seen in a loaded suite run) stops the command with 143 and its line:
    the exit such a callback cannot raise is not ignored, leaving a process that said "stopped"
    and went on to read its job (and could have sent it)."""
    ledger = tmp_path / "ledger.jsonl"
    args = _run_from_stdin(tmp_path, ledger)
    with subprocess.Popen(
        [sys.executable, "-c", _SIGNAL_IN_A_FINALIZER, *args],
        stdin=subprocess.PIPE,  # never closed before the end: a run that goes on waits here
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    ) as process:
        try:
            process.wait(timeout=30)
        finally:
            process.kill()  # only if it still runs
        assert process.stderr is not None
        text = process.stderr.read().decode()
    assert process.returncode == 143, text
    assert "bulkrt: stopped by SIGTERM; the same command can be run again" in text
    assert not ledger.exists() or ledger.read_bytes() == b""


@pytest.mark.parametrize(
    ("retweet", "undo", "cost"),
    [("0.000000000001", "1E+2", "100.000000000001"), ("1e-12", "0", "0.000000000001")],
)
def test_a_dry_run_prints_its_cost_in_plain_notation(
    tmp_path: Path, retweet: str, undo: str, cost: str
) -> None:
    """A dry run's cost reads as a plain decimal number in --json and in the text, never in
    scientific notation, whatever notation the prices were given in."""
    job = tmp_path / "spring.csv"
    job.write_text("account,tweet_id,action\nacme,20,retweet\nacme,21,undo\n")
    accounts = tmp_path / "accounts.json"
    keys = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
    oauth1 = {key: f"{key}-value" for key in keys}
    accounts.write_text(json.dumps({"accounts": {"acme": {"user_id": "1", "oauth1": oauth1}}}))
    accounts.chmod(0o600)
    args = [
        "run", str(job), "--accounts", str(accounts), "--ledger", str(tmp_path / "l.jsonl"),
        "--dry-run", "--price-retweet", retweet, "--price-undo", undo,
    ]  # fmt: skip
    runner = CliRunner()
    as_json = runner.invoke(main, [*args, "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["cost_dollars"] == cost
    text = runner.invoke(main, args)
    assert text.exit_code == 0, text.output
    line = next(line for line in text.stdout.splitlines() if line.startswith("estimated cost"))
    assert "E" not in line.split("(")[0] and "$" in line, line
