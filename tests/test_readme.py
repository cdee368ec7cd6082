"""The README's examples run as written: the campaign-and-rollback walkthrough (in a copy of the
repository's job files, with the sandbox on a free port instead of 8787), the `report` example
on the demo's ledger, and the README's promises about what the commands print."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
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
    done = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "undo item(s) for campaign(s) example-campaign" in done.stdout
    statuses = re.findall(r'"status":"(\w+)"', (tmp_path / "spring.jsonl").read_text())
    assert statuses and set(statuses) == {"ok"}
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    written = {p.name for p in tmp_path.iterdir() if p.name not in (".venv", "jobs")}
    assert written and all(f"/{name}" in ignored for name in written), written


def test_the_report_example_runs_on_the_demo_ledger(tmp_path: Path) -> None:
    """The README's `report` example on the demo's ledger writes its page (exit 0)."""
    demo = subprocess.run(
        [sys.executable, "-m", "bulkrt", "demo"], cwd=tmp_path, capture_output=True, timeout=120
    )
    assert demo.returncode == 0
    line = next(
        line for line in block_after("### `bulkrt report`").splitlines() if "bulkrt-demo" in line
    )
    args = line.split()[1:]
    done = subprocess.run(
        [sys.executable, "-m", "bulkrt", *args], cwd=tmp_path, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "bulkrt-demo" / "report.html").is_file()


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
    done = subprocess.run(
        [sys.executable, "-m", "bulkrt", "validate", "job.csv", "--accounts", "accounts.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert "note" in warnings[0] and "owner" in warnings[1]
