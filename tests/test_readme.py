"""The README's examples run as written: the campaign-and-rollback walkthrough (in a copy of the
repository's job files, with the sandbox on a free port instead of 8787), every other command
line of its ```sh blocks (read from README.md itself, so the README cannot drift from the test),
and the README's promises about what the commands print."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def block_after(heading: str) -> str:
    """The first ```sh block after ``heading``."""
    rest = README.split(heading, 1)[1]
    return rest.split("```sh\n", 1)[1].split("```", 1)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_the_walkthrough_runs_as_written(tmp_path: Path) -> None:
    """Every line of "A campaign and its rollback" succeeds in order (bash -e), the rollback
    undoes the campaign, and every file it writes is in .gitignore."""
    script = block_after("## A campaign and its rollback")
    port = str(free_port())
    script = script.replace("bulkrt sandbox ", f"bulkrt sandbox --port {port} ", 1)
    script = script.replace("8787", port)
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "jobs").symlink_to(ROOT / "jobs")
    env = {k: v for k, v in os.environ.items() if k != "BULKRT_API_BASE"}
    # its own process group: a failing line (bash -e) or the timeout would otherwise leave the
    # script's background sandbox running after the test
    script_run = subprocess.Popen(
        ["bash", "-e", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = script_run.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(script_run.pid, signal.SIGKILL)
        script_run.wait()
    assert script_run.returncode == 0, stdout + stderr
    assert "undo item(s) for campaign(s) example-campaign" in stdout
    statuses = re.findall(r'"status":"(\w+)"', (tmp_path / "spring.jsonl").read_text())
    assert statuses and set(statuses) == {"ok"}
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    written = {p.name for p in tmp_path.iterdir() if p.name not in (".venv", "jobs")}
    assert written and all(f"/{name}" in ignored for name in written), written


WALKTHROUGH = "## A campaign and its rollback"
#: the top block's second line runs the test suite: the suite running this test is that line
SUITE = ".venv/bin/pytest -q"
#: the Tweets of the `expand` example's --tweets file, which the README only names
TWEETS = "20\nhttps://x.com/jack/status/21\n"


def sh_lines() -> list[str]:
    """Every command line of the README's ```sh blocks but the walkthrough's (its own test runs
    it whole): comments and blank lines dropped."""
    blocks: list[str] = []
    for heading, block in zip(
        [""] + re.findall(r"^#+ .*$", README, re.M),
        re.split(r"^#+ .*$", README, flags=re.M),
        strict=True,
    ):
        if heading != WALKTHROUGH:
            blocks += re.findall(r"^```sh\n(.*?)^```", block, re.M | re.S)
    lines = [line.split("  #", 1)[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


@dataclass(frozen=True)
class Shell:
    """Runs README lines in one directory with bulkrt's virtual environment on PATH."""

    cwd: Path
    env: dict[str, str]

    def sh(self, line: str, **extra: str) -> str:
        """Run ``line`` with bash; it must succeed. Returns its stdout."""
        done = subprocess.run(
            ["bash", "-e", "-c", line],
            cwd=self.cwd,
            env={**self.env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
        return done.stdout

    def start(self, line: str, port: int) -> subprocess.Popen[str]:
        """Start a `bulkrt sandbox` line on ``port`` and wait until it says it listens."""
        command = line.replace("bulkrt sandbox ", f"bulkrt sandbox --port {port} ", 1)
        server = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        said = server.stdout.readline()
        if "bulkrt sandbox listening on" not in said:
            server.kill()
            raise AssertionError(f"{line}: {said}{server.communicate()[1]}")
        return server


def stop(server: subprocess.Popen[str]) -> None:
    """Stop a sandbox with SIGINT, as the README says, and check it exits 0 with no traceback:
    a fresh interpreter's whole stop, its shutdown included (`tests/sandbox/test_command.py`
    forks its sandboxes, which end with ``os._exit``)."""
    server.send_signal(signal.SIGINT)
    out, err = server.communicate(timeout=30)
    assert server.returncode == 0, out + err
    assert "Traceback" not in err, err


def run_install_lines(shell: Shell, lines: list[str]) -> list[str]:
    """The top block: its install steps are this test's environment, so of the first line only
    `.venv/bin/bulkrt demo` runs; the second line is this test suite. Returns the lines taken.

    The demo's run of the example campaign is checked here, where it runs as the README says
    (`tests/test_mistakes.py` reruns the demo, on short jobs of its own): the campaign, its
    resume and its rollback, and every account as before the campaign."""
    taken = []
    for line in lines:
        if not line.startswith("python3 -m venv .venv"):
            continue
        if line.endswith(".venv/bin/bulkrt demo"):
            said = shell.sh(line.rsplit("&&", 1)[1])
            assert "40 items: 40 ok" in said, said
            assert "40 already finished before it" in said
            assert "39 undo item(s); 1 retweet made before the campaign left alone" in said
            assert "every account's retweets are as before the campaign: yes" in said
            # 40 retweets and 39 undos: the resume wrote nothing
            ledger = shell.cwd / "bulkrt-demo" / "ledger.jsonl"
            assert ledger.read_text().count("\n") == 79
        else:
            assert line.endswith(SUITE), line
        taken.append(line)
    return taken


def run_curl_lines(shell: Shell, lines: list[str], port: int, user_id: str) -> list[str]:
    """The `curl` inspections, on the sandbox's port and a real user id: the user's retweets are
    the run's, and the stats count requests. Returns the lines taken."""
    taken = []
    for line in lines:
        if line.startswith("curl "):
            answer = json.loads(
                shell.sh(line.replace(":8787", f":{port}").replace("<user_id>", user_id))
            )
            if "/retweets" in line:
                assert sorted(answer["tweet_ids"]) == ["20", "21"]
            else:
                assert answer["by_status"]
            taken.append(line)
    return taken


def test_every_other_readme_command_runs_as_written(tmp_path: Path) -> None:
    """Each command line of the README's ```sh blocks (but the walkthrough's) runs as written
    against a sandbox and succeeds: `sandbox` listens and stops on SIGINT, `demo` then `report`
    on its ledger, `expand`, the dry run and the run (every item ok), `report`, and the `curl`
    inspections, which show the run's retweets in the sandbox's own record. A README line that no
    rule here runs fails the test.

    Substitutions, the only ones: `bulkrt sandbox` gets `--port` with a free port (8787 may be
    taken), and `localhost:8787` in `curl` lines that port; `<user_id>` is a user of the sandbox's
    accounts.json; the run finds the sandbox through BULKRT_API_BASE (the walkthrough's export);
    the `expand` example's Tweets file is written first; the top block's install steps are the
    environment this test runs in (see `run_install_lines`)."""
    lines = sh_lines()
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "spring-tweets.txt").write_text(TWEETS)
    env = {k: v for k, v in os.environ.items() if k != "BULKRT_API_BASE"}
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
    shell = Shell(tmp_path, env)
    port = free_port()
    sandboxes = [line for line in lines if line.startswith("bulkrt sandbox ")]
    serving = next(line for line in sandboxes if "--accounts-out" in line)
    server = shell.start(serving, port)
    ran = [serving]
    try:
        ran += run_install_lines(shell, lines)
        for verb in ("expand", "run", "report"):
            for line in (line for line in lines if line.startswith(f"bulkrt {verb} ")):
                shell.sh(line, BULKRT_API_BASE=f"http://127.0.0.1:{port}")
                ran.append(line)
        users = json.loads((tmp_path / "accounts.json").read_text())["accounts"]
        assert len(users) == 6
        ledger = (tmp_path / "spring.ledger.jsonl").read_text()
        assert re.findall(r'"status":"(\w+)"', ledger) == ["ok"] * 12
        assert (tmp_path / "spring.html").is_file()
        assert (tmp_path / "bulkrt-demo" / "report.html").is_file()
        assert "acme" in (tmp_path / "spring-job.jsonl").read_text()
        ran += run_curl_lines(shell, lines, port, next(iter(users.values()))["user_id"])
    finally:
        stop(server)
    for line in sandboxes:
        if line != serving:
            stop(shell.start(line, free_port()))
            ran.append(line)
    assert sorted(ran) == sorted(lines), set(lines) - set(ran)


def test_the_exit_codes_table_lists_every_exit_code() -> None:
    """Each `ExitCode` value appears in the README's exit codes table."""
    from bulkrt.exitcodes import ExitCode

    table = README.split("### Exit codes", 1)[1].split("\n## ", 1)[0]
    for code in ExitCode:
        assert re.search(rf"^\| [^|]*\b{code.value}\b", table, re.M), code


def test_unknown_columns_warn_once_per_column_as_the_readme_says(tmp_path: Path) -> None:
    """Two unknown columns give two warnings, each naming its column, as the README promises."""
    assert "one warning per unknown column (or key) in each\nfile" in README
    (tmp_path / "job.csv").write_text(
        "account,tweet_id,action,note,owner\nacct001,20,retweet,a,b\n"
    )
    (tmp_path / "accounts.json").write_text(
        '{"accounts": {"acct001": {"user_id": "1", "oauth1": {"consumer_key": "a", '
        '"consumer_secret": "b", "access_token": "c", "access_token_secret": "d"}}}}'
    )
    from tests.test_mistakes import bulkrt  # the real CLI, forked

    done = bulkrt("validate", "job.csv", "--accounts", "accounts.json", cwd=tmp_path)
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert "note" in warnings[0] and "owner" in warnings[1]


def test_the_command_table_matches_the_commands() -> None:
    """The README's command table lists every `bulkrt` command once, and every option it shows
    for a command is one that command takes; so does every option in the `bulkrt run` table."""
    import click

    from bulkrt.cli import main

    table = README.split("## Commands\n\n", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `bulkrt (\w+)([^`]*)` \|", table, re.M)
    context = click.Context(main)
    assert sorted(name for name, _ in rows) == sorted(main.list_commands(context))
    run_table = README.split("### `bulkrt run`", 1)[1].split("How it behaves:", 1)[0]
    shown = [(name, options) for name, options in rows]
    firsts = [
        re.split(r"(?<!\\)\|", line)[1]
        for line in run_table.splitlines()
        if line.startswith("| `--")
    ]
    assert len(firsts) >= 13 and any("--tier" in cell for cell in firsts)
    shown.append(("run", " ".join(firsts)))
    for name, options in shown:
        command = main.get_command(context, name)
        assert command is not None, name
        takes = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        for option in re.findall(r"--[a-z][a-z-]*", options):
            assert option in takes, (name, option)
