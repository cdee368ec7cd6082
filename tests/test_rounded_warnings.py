"""Warnings about Tweet IDs a spreadsheet likely rounded (adversarial pass 20, F6): a file with more
of them than are listed says how many more there were, and `validate --json` carries the warnings
as printed, so neither an operator reading the terminal nor a script reading JSON takes the first
20 for all of them."""

from __future__ import annotations

import json
from pathlib import Path

from bulkrt.errors import Problem
from bulkrt.jobs.rows import first_warnings
from tests.test_mistakes import bulkrt


def test_the_warnings_past_the_first_few_are_counted() -> None:
    """Past ``most`` warnings of one file, one more line says how many were not listed."""
    seen: list[Problem] = []
    sink = first_warnings(seen.append, most=2)
    for line in range(2, 7):
        sink(Problem("j.csv", line, "tweet_id", "rounded?"))
    sink.finish()
    assert [str(p) for p in seen] == [
        "j.csv:2: tweet_id: rounded?",
        "j.csv:3: tweet_id: rounded? (not repeated for later rows)",
        "j.csv: tweet_id: 3 more row(s) with this warning, not listed",
    ]
    quiet: list[Problem] = []
    alone = first_warnings(quiet.append, most=2)
    alone(Problem("j.csv", 2, "tweet_id", "rounded?"))
    alone.finish()
    assert len(quiet) == 1


def test_validate_says_how_many_more_and_json_carries_them(tmp_path: Path) -> None:
    """25 rounded-looking IDs: `validate` prints 20 warnings and "5 more"; with `--json` the
    object holds the same 21 lines under ``warnings``; a clean file's object holds none."""
    accounts = tmp_path / "acc.json"
    keys = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
    oauth1 = {key: f"{key}-value" for key in keys}
    accounts.write_text(json.dumps({"accounts": {"acct001": {"user_id": "1", "oauth1": oauth1}}}))
    accounts.chmod(0o600)
    job = tmp_path / "r25.csv"
    rows = [f"acct001,1861359704022{n}0000,retweet" for n in range(11, 36)]
    job.write_text("\n".join(["account,tweet_id,action", *rows]) + "\n")
    done = bulkrt("validate", str(job), "--accounts", str(accounts), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 21
    assert warnings[-1] == (
        f"warning: {job}: tweet_id: 5 more row(s) with this warning, not listed"
    )
    as_json = bulkrt("validate", str(job), "--accounts", str(accounts), "--json", cwd=tmp_path)
    document = json.loads(as_json.stdout)
    assert document["warnings"] == [line.removeprefix("warning: ") for line in warnings]
    clean = tmp_path / "clean.csv"
    clean.write_text("account,tweet_id,action\nacct001,1861359704022656025,retweet\n")
    clean_json = bulkrt("validate", str(clean), "--accounts", str(accounts), "--json", cwd=tmp_path)
    assert json.loads(clean_json.stdout)["warnings"] == []
