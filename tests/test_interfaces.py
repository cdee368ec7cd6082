"""What scripts and operators read: `--json` summaries of run, validate and rollback, ledger text
printed as data (never as markup), and a dry run that names where its limits came from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.test_mistakes import bulkrt
from tests.test_run import ACCOUNTS, MakeWorld, rows, run_cli


async def test_run_validate_and_rollback_print_one_json_object_with_json(
    make_world: MakeWorld,
) -> None:
    """With --json, validate, the dry run, the run and the rollback each print exactly one JSON
    object on stdout holding their counts."""
    world = await make_world()
    job = world.job(rows(ACCOUNTS[:2], 3))
    valid = bulkrt("validate", str(job), "--accounts", str(world.accounts), "--json", cwd=world.dir)
    assert valid.returncode == 0, valid.stderr
    assert json.loads(valid.stdout) == {
        "ok": True, "items": 6, "files": 1, "finished": None, "superseded": None,
        "to_send": None, "warnings": [],
        "by_account": {"acct001": {"retweet": 3}, "acct002": {"retweet": 3}},
    }  # fmt: skip
    planned = await world.run(job, "--dry-run", "--json")
    plan = json.loads(planned.stdout.decode())
    assert plan["requests"] == 6 and plan["limits"].startswith("--limit 5 per --window 2 s")
    done = await world.run(job, "--json")
    assert done.returncode == 0, done.stderr.decode()
    summary = json.loads(done.stdout.decode())
    assert summary["this_run"] == {"ok": 6, "rejected": 0, "error": 0, "superseded": 0}
    assert summary["stopped_early"] is None and summary["hints"] == []
    undo = world.dir / "undo.csv"
    made = bulkrt("rollback", str(world.ledger), "--out", str(undo), "--json", cwd=world.dir)
    assert made.returncode == 0, made.stderr
    document = json.loads(made.stdout)
    assert document["undo"] == 6 and document["campaigns"] == ["campaign"]
    assert document["next"].startswith(f"bulkrt run {undo} --accounts FILE")


async def test_a_misconfigured_run_says_so_in_its_json(make_world: MakeWorld) -> None:
    """A run against a base where nothing listens reports the cause and the base in its JSON."""
    world = await make_world()
    args = world.run_args(world.job(rows(ACCOUNTS, 1)), "--json")
    args[args.index("--api-base") + 1] = "http://127.0.0.1:9"
    done = await run_cli(args)
    assert done.returncode == 3
    stopped = json.loads(done.stdout.decode())["stopped_early"]
    assert stopped["api_base"] == "http://127.0.0.1:9"
    assert stopped["cause"] == "no connection to the API base"


def test_validate_json_lists_the_problems(tmp_path: Path) -> None:
    """A job with a bad row exits 2 and its --json names the file, line and field."""
    (tmp_path / "job.csv").write_text("account,tweet_id,action\nacct001,abc,retweet\n")
    (tmp_path / "accounts.json").write_text(
        '{"accounts": {"acct001": {"user_id": "1", "oauth1": {"consumer_key": "a", '
        '"consumer_secret": "b", "access_token": "c", "access_token_secret": "d"}}}}'
    )
    done = bulkrt("validate", "job.csv", "--accounts", "accounts.json", "--json", cwd=tmp_path)
    assert done.returncode == 2
    document = json.loads(done.stdout)
    assert document["ok"] is False and document["problems"] == 1
    assert document["first"][0]["file"] == "job.csv" and document["first"][0]["line"] == 2
    assert document["first"][0]["field"] == "tweet_id"


def test_status_prints_ledger_text_as_data_not_markup(tmp_path: Path) -> None:
    """An account named `acme[/]` and an error kind in square brackets are printed as they
    are, and status does not crash on them."""
    line = {
        "schema": 1, "ts": "2026-11-26T01:00:00.000Z", "run": "r1", "key": "k1",
        "campaign": "s", "account": "acme[/]", "user_id": "1", "tweet_id": "20",
        "action": "retweet", "status": "error", "retweeted": None, "preexisting": False,
        "http": 500, "error": {"type": "[bold]boom", "title": "t", "detail": "d"}, "attempts": 1,
    }  # fmt: skip
    (tmp_path / "ledger.jsonl").write_text(json.dumps(line, separators=(",", ":")) + "\n")
    done = bulkrt("status", "ledger.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "acme[/]" in done.stdout and "[bold]boom" in done.stdout


async def test_the_dry_run_names_where_its_limits_come_from(make_world: MakeWorld) -> None:
    """The dry run says its duration is under --limit/--window when they are given, and under
    the tier's limits otherwise."""
    world = await make_world()
    job = world.job(rows(ACCOUNTS[:1], 2))
    given = await world.run(job, "--dry-run")
    assert "expected duration under --limit 5 per --window 2 s" in given.stdout.decode()
    args = world.run_args(job, "--dry-run")
    for option in ("--limit", "--window"):
        at = args.index(option)
        del args[at : at + 2]
    tier = await run_cli([*args, "--tier", "basic"])
    assert "expected duration under the basic tier limits (5 per 15 min" in tier.stdout.decode()


def test_a_fifo_or_dev_stdin_works_as_the_job(tmp_path: Path) -> None:
    """A named pipe and /dev/stdin (a pipe behind it) are read as jobs, not "no such file"."""
    job = "account,tweet_id,action\nacct001,20,retweet\nacct001,21,retweet\n"
    (tmp_path / "accounts.json").write_text(
        '{"accounts": {"acct001": {"user_id": "1", "oauth1": {"consumer_key": "a", '
        '"consumer_secret": "b", "access_token": "c", "access_token_secret": "d"}}}}'
    )
    fifo = tmp_path / "job.fifo"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"printf '%s' '{job}' > {fifo}"])
    done = bulkrt("validate", str(fifo), "--format", "csv", "--accounts", "accounts.json",
                  cwd=tmp_path)  # fmt: skip
    writer.wait(10)
    assert done.returncode == 0, done.stderr
    assert "ok: 2 items" in done.stdout
    piped = subprocess.run(
        [sys.executable, "-m", "bulkrt", "validate", "/dev/stdin", "--format", "csv",
         "--accounts", "accounts.json"],
        cwd=tmp_path, input=job, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert "ok: 2 items" in piped.stdout
