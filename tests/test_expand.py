"""`bulkrt expand`: accounts x Tweets as a job file that `bulkrt validate` accepts; every bad
entry reported at its place with exit 2 and nothing written; an existing job is never replaced
without --force."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bulkrt.cli import main
from bulkrt.commands.sandbox import write_accounts_file
from bulkrt.core.items import Action
from bulkrt.jobs.campaign import expand as cross_product
from bulkrt.jobs.campaign import read_accounts, read_tweets, split_entries
from bulkrt.jobs.job_writer import write_job
from bulkrt.jobs.keys import derived_key
from bulkrt.jobs.loader import check_jobs, open_jobs, read_items
from bulkrt.jobs.rows import Row
from bulkrt.sandbox import Sandbox, SandboxConfig


@pytest.fixture
def accounts(tmp_path: Path) -> Path:
    """An accounts file of the sandbox's users acct001..acct004 (no server is started)."""
    path = tmp_path / "accounts.json"
    world = Sandbox(SandboxConfig(users=4)).state.world
    write_accounts_file(path, world.accounts_file(expires_at=2_000_000_000))
    return path


def expand(*args: str) -> Result:
    runner = CliRunner()
    return runner.invoke(main, ["expand", *args], catch_exceptions=False)


TWEET_CASES = [
    ("ids and urls", ["20", "https://x.com/a/status/21?s=20", "https://twitter.com/i/web/status/22"],
     ["20", "21", "22"], []),
    ("a bad id", ["20", "abc"], ["20"], ["F:2: tweet_id: not a Tweet ID (1-19 digits)"]),
    ("a url and the id it names", ["https://x.com/a/status/20", "20"], ["20"],
     ["F:2: tweet_id: repeats line 1 (Tweet 20)"]),
    ("a profile url", ["https://x.com/jack"], [], ["F:1: tweet_id: not a post URL"]),
    ("a leading zero", ["020"], [], ["F:1: tweet_id: leading zero"]),
]  # fmt: skip


@pytest.mark.parametrize(("entries", "ids", "problems"), [c[1:] for c in TWEET_CASES],
                         ids=[c[0] for c in TWEET_CASES])  # fmt: skip
def test_read_tweets(entries: list[str], ids: list[str], problems: list[str]) -> None:
    """Tweets become IDs in order; each bad or repeated entry is a problem at its line."""
    got, bad = read_tweets(enumerate(entries, start=1), source="F")
    assert got == ids
    assert len(bad) == len(problems)
    assert all(str(p).startswith(want) for p, want in zip(bad, problems, strict=True))


def test_read_accounts_reports_repeats_unknown_names_and_control_characters() -> None:
    """Names keep their order; a repeat, a name the accounts file lacks and a control character
    are each reported at their line."""
    entries = split_entries("acct001\n# a comment\n\nacct002\nacct001\nnobody\nbad\tname\n")
    names, bad = read_accounts(entries, source="n.txt", known={"acct001", "acct002"})
    assert names == ["acct001", "acct002"]
    assert [str(p) for p in bad] == [
        "n.txt:5: account: 'acct001' repeats line 1",
        "n.txt:6: account: unknown account 'nobody' (not in the accounts file)",
        "n.txt:7: account: control character in 'bad\\tname'",
    ]


def test_read_accounts_reports_invalid_utf8() -> None:
    """A name holding an undecodable byte (from the command line) is a problem, not a crash
    when the job is written."""
    undecodable = b"caf\xe9".decode("utf-8", "surrogateescape")
    names, bad = read_accounts([(1, undecodable), (2, "acme")], source="--accounts")
    assert names == ["acme"]
    assert [str(p) for p in bad] == ["--accounts:1: account: invalid UTF-8"]


#: names that need quoting or escaping in CSV and JSON, and a row repeated (keys ...,0 and ...,1)
HOSTILE = ["acme", "a,b", 'say "hi"', "ünï \u2028 x", "semi;colon"]
JOB_NAMES = ["j.csv", "j.jsonl", "j.ndjson", "j.csv.gz", "j.jsonl.gz"]


@pytest.mark.parametrize("name", JOB_NAMES)
def test_written_rows_read_back_as_the_same_rows(tmp_path: Path, name: str) -> None:
    """Whatever the format, the rows `write_job` writes are read back as the same rows, in
    order, with the keys derived from their four values (a repeated row counted)."""
    rows = [
        *cross_product(HOSTILE, ["20", "21"], Action.RETWEET, "spring, 2026"),
        Row("spring, 2026", "a,b", "20", Action.RETWEET),
        *cross_product(HOSTILE, ["20"], Action.UNDO, "spring-rollback"),
    ]
    path = tmp_path / name
    assert write_job(path, rows) == len(rows)
    with open_jobs([str(path)], fmt=None, campaign=None) as files:
        check = check_jobs(files, set(HOSTILE))
        items = list(read_items(files, set(HOSTILE), check))
    assert [Row(i.campaign, i.account, i.tweet_id, i.action) for i in items] == rows
    first = 2 if ".csv" in name else 1  # after the CSV header
    assert [i.line for i in items] == list(range(first, first + len(rows)))
    assert items[len(HOSTILE) * 2].key == derived_key("spring, 2026", "a,b", "retweet", "20", 1)
    assert items[1].key == derived_key("spring, 2026", "a,b", "retweet", "20", 0)


def test_write_job_refuses_a_name_of_no_job_format(tmp_path: Path) -> None:
    """A job named neither .csv nor .jsonl/.ndjson is refused and nothing is written."""
    with pytest.raises(ValueError, match="name the job .csv or .jsonl"):
        write_job(tmp_path / "j.txt", [Row("c", "acme", "20", Action.RETWEET)])
    assert list(tmp_path.iterdir()) == []


class TestCommand:
    def test_the_cross_product_is_a_valid_job(self, tmp_path: Path, accounts: Path) -> None:
        """Two accounts x three Tweets (a list with a URL) make six rows, Tweet by Tweet, that
        `bulkrt validate` accepts."""
        out = tmp_path / "spring.csv"
        tweets = "20, https://x.com/a/status/21 ,22"
        result = expand("--accounts", "acct001,acct002", "--tweets", tweets,
                        "--campaign", "spring", "--out", str(out))  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "2 account(s) x 3 Tweet(s) = 6 retweet item(s) of campaign spring" in result.output
        rows = list(csv.DictReader(out.read_text().splitlines()))
        assert [(r["account"], r["tweet_id"]) for r in rows] == [
            ("acct001", "20"), ("acct002", "20"), ("acct001", "21"), ("acct002", "21"),
            ("acct001", "22"), ("acct002", "22"),
        ]  # fmt: skip
        assert {(r["campaign"], r["action"]) for r in rows} == {("spring", "retweet")}
        checked = CliRunner().invoke(main, ["validate", str(out), "--accounts", str(accounts)])
        assert checked.exit_code == 0, checked.output
        assert "ok: 6 items" in checked.output

    def test_files_of_names_and_ids_and_an_accounts_file(
        self, tmp_path: Path, accounts: Path
    ) -> None:
        """--accounts given an accounts JSON file takes all its names; --tweets a file of one
        per line; the .jsonl.gz job holds every pair, as undo rows when asked."""
        tweets = tmp_path / "tweets.txt"
        tweets.write_text("# spring\n20\n\nhttps://x.com/a/status/21\n")
        out = tmp_path / "undo.jsonl.gz"
        result = expand("--accounts", str(accounts), "--tweets", str(tweets),
                        "--action", "unretweet", "--campaign", "spring",
                        "--out", str(out))  # fmt: skip
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in gzip.decompress(out.read_bytes()).splitlines()]
        assert len(rows) == 8 and {r["action"] for r in rows} == {"undo"}
        assert {r["account"] for r in rows} == {"acct001", "acct002", "acct003", "acct004"}
        checked = CliRunner().invoke(main, ["validate", str(out), "--accounts", str(accounts)])
        assert checked.exit_code == 0, checked.output

    def test_bad_entries_exit_2_listing_each_and_write_nothing(
        self, tmp_path: Path, accounts: Path
    ) -> None:
        """Every bad entry is reported as FILE:LINE: field: problem, exit 2, and no job file."""
        names = tmp_path / "names.txt"
        names.write_text("acct001\nnobody\nacct001\n")
        out = tmp_path / "job.csv"
        result = expand("--accounts", str(names), "--tweets", "20,x,20",
                        "--campaign", "spring", "--out", str(out),
                        "--accounts-file", str(accounts))  # fmt: skip
        assert result.exit_code == 2
        assert f"{names}:2: account: unknown account 'nobody'" in result.output
        assert f"{names}:3: account: 'acct001' repeats line 1" in result.output
        assert "--tweets:2: tweet_id: not a Tweet ID" in result.output
        assert "--tweets:3: tweet_id: repeats entry 1 (Tweet 20)" in result.output
        assert "4 problem(s); nothing written" in result.output
        assert list(tmp_path.glob("job*")) == []

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--campaign", "spring-rollback"], "ends with '-rollback', which rollback jobs use"),
            (["--out", "job.txt"], "name it .csv or .jsonl"),
            (["--tweets", " , "], "--tweets: tweets: empty list"),
        ],
    )
    def test_bad_options_exit_2(self, tmp_path: Path, args: list[str], message: str) -> None:
        """A rollback-like campaign name, a job name of no known kind, or an empty list: exit 2."""
        defaults = {"--accounts": "acct001", "--tweets": "20", "--campaign": "spring",
                    "--out": str(tmp_path / "job.csv")}  # fmt: skip
        defaults.update(dict(zip(args[::2], args[1::2], strict=True)))
        result = expand(*[part for pair in defaults.items() for part in pair])
        assert result.exit_code == 2
        assert message in result.output

    def test_an_existing_job_is_replaced_only_with_force(self, tmp_path: Path) -> None:
        """An existing --out is left as it was (exit 2) unless --force, which replaces it."""
        out = tmp_path / "job.csv"
        out.write_text("precious\n")
        args = ["--accounts", "acct001", "--tweets", "20", "--campaign", "c", "--out", str(out)]
        refused = expand(*args)
        assert refused.exit_code == 2 and "exists; --force replaces it" in refused.output
        assert out.read_text() == "precious\n"
        forced = expand(*args, "--force")
        assert forced.exit_code == 0
        assert out.read_text() == "campaign,account,tweet_id,action\nc,acct001,20,retweet\n"
