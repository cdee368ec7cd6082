"""Job files read as items: Tweet IDs, rows, keys, streaming passes, and `bulkrt validate`."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulkrt.cli import main
from bulkrt.core.items import Action, Item
from bulkrt.errors import JobInputError, Problem
from bulkrt.jobs.keys import derived_key
from bulkrt.jobs.loader import JobFormat, check_jobs, open_jobs, read_items
from bulkrt.jobs.rows import Row, check_row
from bulkrt.jobs.tweet_ids import parse_tweet_id
from tests.test_run import MakeWorld, run_cli

ACCOUNTS = frozenset({"acct001", "acct002"})


def _items(*paths: str, campaign: str | None = None, fmt: JobFormat | None = None) -> list[Item]:
    with open_jobs(paths, fmt=fmt, campaign=campaign) as files:
        check = check_jobs(files, ACCOUNTS, on_warning=lambda p: None)
        return list(read_items(files, ACCOUNTS, check))


class TestParseTweetId:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("20", "20"),
            ("  1460323737035677698 ", "1460323737035677698"),
            ("9223372036854775807", "9223372036854775807"),
            ("https://x.com/jack/status/20", "20"),
            ("https://x.com/jack/status/20?s=20", "20"),
            ("http://twitter.com/jack/status/20/", "20"),
            ("https://mobile.twitter.com/jack/status/20", "20"),
            ("https://www.x.com/jack/status/20/photo/1", "20"),
            ("https://x.com/i/web/status/20#reply", "20"),
            ("https://X.COM/Jack_2/statuses/20", "20"),
        ],
    )
    def test_accepted_forms_become_the_bare_id(self, text: str, expected: str) -> None:
        """Bare IDs and post URLs on x.com and twitter.com (with their usual tails) give the ID."""
        assert parse_tweet_id(text) == expected

    @pytest.mark.parametrize(
        "text",
        ["", "0", "00", "+20", "2e3", "https://x.com/jack/status/", "https://x.com/jack/likes/20"],
    )
    def test_other_text_is_refused(self, text: str) -> None:
        """Anything that does not name exactly one Tweet raises ValueError."""
        with pytest.raises(ValueError, match=r"\S"):
            parse_tweet_id(text)


class TestCheckRow:
    def _check(self, **fields: object) -> Row | list[Problem]:
        return check_row(fields, source="j.csv", line=4, accounts=ACCOUNTS, default_campaign="camp")

    def test_unretweet_is_an_alias_of_undo_and_actions_ignore_case(self) -> None:
        """`unretweet` and `UNDO` both mean undo; the campaign defaults when the row has none."""
        for action in ("unretweet", "UNDO", " Undo "):
            row = self._check(account="acct001", tweet_id="20", action=action)
            assert isinstance(row, Row)
            assert (row.action, row.campaign, row.id) == (Action.UNDO, "camp", None)

    def test_every_bad_field_of_a_row_is_reported(self) -> None:
        """A row with three bad fields yields three problems, in field order, at its line."""
        problems = self._check(account="nobody", tweet_id="x", action="like")
        assert isinstance(problems, list)
        assert [str(p).split(":")[:3] for p in problems] == [
            ["j.csv", "4", " account"],
            ["j.csv", "4", " tweet_id"],
            ["j.csv", "4", " action"],
        ]

    def test_control_characters_and_non_strings_are_refused(self) -> None:
        """A campaign with a tab or a boolean account is named, not silently used."""
        problems = self._check(account=True, tweet_id="20", action="retweet", campaign="a\tb")
        assert isinstance(problems, list)
        assert [(p.field, p.message.split(" ")[0]) for p in problems] == [
            ("account", "must"),
            ("campaign", "control"),
        ]


class TestKeys:
    def test_derived_key_is_json_array_text(self) -> None:
        """A row without id has the key ["campaign","account","action","tweet_id",n]."""
        assert derived_key("c", "a", "retweet", "20", 1) == '["c","a","retweet","20",1]'
        assert derived_key('c"1', "a", "undo", "20", 0) == '["c\\"1","a","undo","20",0]'

    def test_repeated_rows_are_numbered_in_file_order(self, tmp_path: Path) -> None:
        """Identical rows become items 0, 1, 2; an id is the key itself; a unique row gets 0."""
        job = tmp_path / "camp.csv"
        job.write_text(
            "account,tweet_id,action,id\n"
            "acct001,20,retweet,\n"
            "acct001,20,retweet,\n"
            "acct002,20,retweet,\n"
            "acct001,20,retweet,\n"
            "acct001,21,undo,my-id\n"
        )
        assert [item.key for item in _items(str(job))] == [
            '["camp","acct001","retweet","20",0]',
            '["camp","acct001","retweet","20",1]',
            '["camp","acct002","retweet","20",0]',
            '["camp","acct001","retweet","20",2]',
            "my-id",
        ]

    def test_numbering_runs_across_the_job_files_of_one_invocation(self, tmp_path: Path) -> None:
        """The same row in two files given together is two items (n counts across files)."""
        for name in ("a.csv", "b.csv"):
            (tmp_path / name).write_text("account,tweet_id,action,campaign\nacct001,20,retweet,c\n")
        keys = [i.key for i in _items(str(tmp_path / "a.csv"), str(tmp_path / "b.csv"))]
        assert keys == ['["c","acct001","retweet","20",0]', '["c","acct001","retweet","20",1]']

    def test_keys_are_the_same_on_every_read(self, tmp_path: Path) -> None:
        """Reading the same job twice gives the same keys, which is what resume relies on."""
        job = tmp_path / "j.csv"
        job.write_text("account,tweet_id,action\n" + "acct001,20,retweet\n" * 3)
        assert [i.key for i in _items(str(job))] == [i.key for i in _items(str(job))]


class TestReading:
    def test_csv_jsonl_and_gzip_give_the_same_items(self, tmp_path: Path) -> None:
        """The same rows as CSV, JSONL and gzipped CSV give the same keys, accounts and actions."""
        rows = [("acct001", "https://x.com/u/status/20", "retweet"), ("acct002", "21", "unretweet")]
        csv_text = "account,tweet_id,action\n" + "".join(f"{a},{t},{x}\n" for a, t, x in rows)
        jsonl_text = "".join(
            json.dumps({"account": a, "tweet_id": t, "action": x}) + "\n" for a, t, x in rows
        )
        (tmp_path / "j.csv").write_text(csv_text)
        (tmp_path / "j.jsonl").write_text(jsonl_text)
        (tmp_path / "j.csv.gz").write_bytes(gzip.compress(csv_text.encode()))
        seen = [
            [(i.key, i.account, i.tweet_id, i.action) for i in _items(str(tmp_path / name))]
            for name in ("j.csv", "j.jsonl", "j.csv.gz")
        ]
        assert seen[0] == seen[1] == seen[2]
        assert [i[2:] for i in seen[0]] == [("20", Action.RETWEET), ("21", Action.UNDO)]

    def test_gzip_content_is_read_through_gzip_whatever_the_name(self, tmp_path: Path) -> None:
        """A compressed job renamed without ``.gz`` (or named in capitals, with ``--format``),
        and a compressed job on standard input, give the rows the plain file gives, not
        "invalid UTF-8"; the campaign still comes from the name as given."""
        text = b"account,tweet_id,action\nacct001,20,retweet\nacct002,21,undo\n"
        (tmp_path / "spring.csv").write_bytes(text)
        (tmp_path / "renamed.csv").write_bytes(gzip.compress(text))
        (tmp_path / "SHOUT.CSV.GZ").write_bytes(gzip.compress(text))
        plain = [(i.account, i.tweet_id, i.action) for i in _items(str(tmp_path / "spring.csv"))]
        assert plain == [("acct001", "20", Action.RETWEET), ("acct002", "21", Action.UNDO)]
        renamed = _items(str(tmp_path / "renamed.csv"))
        assert [(i.account, i.tweet_id, i.action) for i in renamed] == plain
        assert {i.campaign for i in renamed} == {"renamed"}
        shout = _items(str(tmp_path / "SHOUT.CSV.GZ"), fmt=JobFormat.CSV)
        assert [(i.account, i.tweet_id, i.action) for i in shout] == plain
        stdin = io.BytesIO(gzip.compress(text))
        with open_jobs(["-"], fmt=JobFormat.CSV, campaign=None, stdin=stdin) as files:
            items = list(read_items(files, ACCOUNTS, check_jobs(files, ACCOUNTS)))
        assert [(i.account, i.tweet_id, i.action) for i in items] == plain

    @pytest.mark.parametrize("name", ["bomb.csv", "bomb.csv.gz", "bomb.jsonl"])
    def test_a_line_inflating_past_a_mebibyte_is_refused_where_it_starts(
        self, tmp_path: Path, name: str
    ) -> None:
        """A gzip bomb of one line (a few KB that inflate to 64 MiB without a new-line), under
        any name, is refused at that line as not a job's row, naming file and line: it is not
        read whole into memory (it was: a 1.3 MB file of one 300 MB line took 700 MB)."""
        job = tmp_path / name
        first = b"account,tweet_id,action\n"
        if name.endswith(".jsonl"):
            first = b'{"account": "acct001", "tweet_id": "20", "action": "retweet"}\n'
        with gzip.open(job, "wb") as out:
            out.write(first)
            for _ in range(64):
                out.write(b"a" * (1 << 20))
        seen: list[str] = []
        with (
            open_jobs([str(job)], fmt=None, campaign=None) as files,
            pytest.raises(JobInputError),
        ):
            check_jobs(files, ACCOUNTS, on_problem=lambda p: seen.append(str(p)))
        assert seen == [
            f"{job}:2: file: a line longer than 1 MiB: not a job's row; not read further"
        ]

    def test_a_gz_name_on_plain_text_or_on_a_damaged_archive_says_which(
        self, tmp_path: Path
    ) -> None:
        """A plain-text job named ``.gz`` is refused saying so, at line 1; an archive with bytes
        after its end is refused at the line after the last one read, with gzip's reason."""
        text = b"account,tweet_id,action\nacct001,20,retweet\n"
        (tmp_path / "plain.csv.gz").write_bytes(text)
        (tmp_path / "tail.csv.gz").write_bytes(gzip.compress(text) + b"garbage")
        said: dict[str, list[str]] = {}
        for name in ("plain.csv.gz", "tail.csv.gz"):
            with (
                open_jobs([str(tmp_path / name)], fmt=None, campaign=None) as files,
                pytest.raises(JobInputError) as caught,
            ):
                check_jobs(files, ACCOUNTS)
            said[name] = [str(problem) for problem in caught.value.problems]
        plain, tail = str(tmp_path / "plain.csv.gz"), str(tmp_path / "tail.csv.gz")
        assert said["plain.csv.gz"] == [
            f"{plain}:1: file: named .gz but not gzip-compressed: rename it without .gz"
        ]
        assert said["tail.csv.gz"] == [
            f"{tail}:3: file: cannot read past the line before: Not a gzipped file (b'ga')"
        ]

    def test_campaign_comes_from_row_then_option_then_file_name(self, tmp_path: Path) -> None:
        """A row's campaign wins; else --campaign; else the file name without extensions."""
        job = tmp_path / "spring-push.csv.gz"
        job.write_bytes(
            gzip.compress(
                b"account,tweet_id,action,campaign\nacct001,20,retweet,own\nacct001,21,retweet,\n"
            )
        )
        assert [i.campaign for i in _items(str(job))] == ["own", "spring-push"]
        assert [i.campaign for i in _items(str(job), campaign="opt")] == ["own", "opt"]

    def test_standard_input_is_spooled_and_read_like_a_file(self) -> None:
        """`-` reads standard input once, keeps it for both passes, and names it <stdin>."""
        stdin = io.BytesIO(b"account,tweet_id,action\nacct001,20,retweet\n")
        with open_jobs(["-"], fmt=JobFormat.CSV, campaign=None, stdin=stdin) as files:
            check = check_jobs(files, ACCOUNTS)
            items = list(read_items(files, ACCOUNTS, check))
        assert [(i.source, i.line, i.campaign) for i in items] == [("<stdin>", 2, "stdin")]

    def test_every_problem_is_reported_in_file_order_not_just_the_first(
        self, tmp_path: Path
    ) -> None:
        """Three bad rows among good ones give three problems, each passed on as it is found."""
        job = tmp_path / "j.csv"
        job.write_text(
            "account,tweet_id,action\nacct001,x,retweet\nacct001,20,retweet\n"
            "acct003,20,retweet\nacct001,21,boost\n"
        )
        seen: list[str] = []
        with (
            open_jobs([str(job)], fmt=None, campaign=None) as files,
            pytest.raises(JobInputError) as caught,
        ):
            check_jobs(files, ACCOUNTS, on_problem=lambda p: seen.append(str(p)))
        assert [s.split(": ")[0:2] for s in seen] == [
            [f"{job}:2", "tweet_id"],
            [f"{job}:4", "account"],
            [f"{job}:5", "action"],
        ]
        assert caught.value.total == 3
        assert [str(p) for p in caught.value.problems] == seen

    def test_unknown_columns_are_a_warning_once_per_file(self, tmp_path: Path) -> None:
        """An extra column is reported once as a warning and its rows are still items."""
        job = tmp_path / "j.jsonl"
        job.write_text(
            '{"account":"acct001","tweet_id":"20","action":"retweet","note":"a"}\n'
            '{"account":"acct001","tweet_id":21,"action":"retweet","note":"b"}\n'
        )
        warnings: list[Problem] = []
        with open_jobs([str(job)], fmt=None, campaign=None) as files:
            check = check_jobs(files, ACCOUNTS, on_warning=warnings.append)
        assert [str(w) for w in warnings] == [f"{job}:1: note: unknown field, ignored"]
        assert check.items == 2

    def test_missing_and_repeated_paths_are_named_before_reading(self, tmp_path: Path) -> None:
        """A missing file and a file given twice are both reported, without a line number."""
        job = tmp_path / "j.csv"
        job.write_text("account,tweet_id,action\nacct001,20,retweet\n")
        with (
            pytest.raises(JobInputError) as caught,
            open_jobs([str(job), str(job), "nope.csv"], fmt=None, campaign=None),
        ):
            pass
        assert [str(p) for p in caught.value.problems] == [
            f"{job}: file: given more than once",
            "nope.csv: file: no such file",
        ]

    def test_a_file_changed_between_passes_stops_the_stream(self, tmp_path: Path) -> None:
        """If a job file turns bad after it was checked, read_items raises instead of going on."""
        job = tmp_path / "j.csv"
        job.write_text("account,tweet_id,action\nacct001,20,retweet\n")
        with open_jobs([str(job)], fmt=None, campaign=None) as files:
            check = check_jobs(files, ACCOUNTS)
            job.write_text("account,tweet_id,action\nacct001,zz,retweet\n")
            with pytest.raises(JobInputError, match="tweet_id"):
                list(read_items(files, ACCOUNTS, check))


class TestValidateCommand:
    def _accounts(self, tmp_path: Path, mode: int = 0o600) -> Path:
        path = tmp_path / "accounts.json"
        oauth1 = {
            "consumer_key": "ck",
            "consumer_secret": "cs-xxxxxxxxxx",
            "access_token": "at-xxxxxxxxxx",
            "access_token_secret": "ats-xxxxxxxxxx",
        }
        path.write_text(
            json.dumps(
                {"accounts": {n: {"user_id": "1", "oauth1": oauth1} for n in sorted(ACCOUNTS)}}
            )
        )
        path.chmod(mode)
        return path

    def test_good_jobs_exit_0_with_counts_per_account_and_action(self, tmp_path: Path) -> None:
        """A valid job prints the item counts per account and action and exits 0."""
        job = tmp_path / "j.csv"
        job.write_text(
            "account,tweet_id,action\nacct001,20,retweet\nacct001,21,retweet\nacct002,20,undo\n"
        )
        result = CliRunner().invoke(
            main, ["validate", str(job), "--accounts", str(self._accounts(tmp_path))]
        )
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines() == [
            "ok: 3 items in 1 job file(s)",
            "  acct001  retweet  2",
            "  acct002  undo     1",
        ]

    def test_ledger_option_counts_finished_items(self, tmp_path: Path) -> None:
        """With --ledger, validate says how many items the ledger already holds as finished."""
        job = tmp_path / "j.csv"
        job.write_text("account,tweet_id,action,id\nacct001,20,retweet,a\nacct001,21,retweet,b\n")
        ledger = tmp_path / "ledger.jsonl"
        line = {
            "schema": 1, "ts": "t", "run": "r", "key": "a", "campaign": "j",
            "account": "acct001", "user_id": "1", "tweet_id": "20", "action": "retweet",
            "status": "ok", "retweeted": True, "preexisting": False, "http": 200,
            "error": None, "attempts": 1,
        }  # fmt: skip
        ledger.write_text(json.dumps(line) + "\n")
        result = CliRunner().invoke(
            main,
            ["validate", str(job), "--accounts", str(self._accounts(tmp_path)),
             "--ledger", str(ledger)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert f"{ledger}: 1 of these items already finished; 1 to send" in result.stdout

    def test_the_example_jobs_are_valid_for_six_sandbox_accounts(self, tmp_path: Path) -> None:
        """The jobs/ examples validate against the accounts the sandbox generates (acct001..6)."""
        oauth1 = {
            k: f"{k}-xxxxxxxx"
            for k in ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
        }
        names = [f"acct{n:03d}" for n in range(1, 7)]
        accounts = tmp_path / "accounts.json"
        accounts.write_text(json.dumps(
            {"accounts": {n: {"user_id": str(i), "oauth1": oauth1} for i, n in enumerate(names)}}
        ))  # fmt: skip
        accounts.chmod(0o600)
        jobs = Path(__file__).parent.parent / "jobs"
        result = CliRunner().invoke(
            main,
            ["validate", str(jobs / "example-campaign.csv"), str(jobs / "example.jsonl"),
             "--accounts", str(accounts)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("ok: 46 items in 2 job file(s)\n")
        assert result.stderr == ""

    def test_warnings_are_shown_but_do_not_fail(self, tmp_path: Path) -> None:
        """An unknown column and a group-readable accounts file are warned about; exit stays 0."""
        job = tmp_path / "j.csv"
        job.write_text("account,tweet_id,action,note\nacct001,20,retweet,hi\n")
        accounts = self._accounts(tmp_path, mode=0o644)
        result = CliRunner().invoke(main, ["validate", str(job), "--accounts", str(accounts)])
        assert result.exit_code == 0, result.output
        assert f"warning: {job}:1: note: unknown column, ignored" in result.stderr
        assert "accounts_file_readable_by_others" in result.stderr
        assert f"chmod 600 {accounts}" in result.stderr


def test_loading_imports_no_network_library() -> None:
    """Loading, validating and the ledger import neither aiohttp, anyio nor the sandbox."""
    code = (
        "import sys, bulkrt.jobs.loader, bulkrt.shell.accounts, bulkrt.ledger.reader,"
        " bulkrt.ledger.writer, bulkrt.ledger.counts, bulkrt.ledger.resume\n"
        "print(','.join(m for m in ('aiohttp', 'anyio', 'aiolimiter', 'bulkrt.sandbox')"
        " if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


#: `bulkrt` with each open of a job file (`job_files._open`, once per pass) noted in the file
#: that ``BULKRT_TEST_OPENS`` names: the real CLI in its own (forked) process, the seam counted
COUNTING_BULKRT = """
import os, sys
from bulkrt.jobs import job_files
from bulkrt.cli import main

real_open = job_files._open

def counting_open(path):
    with open(os.environ["BULKRT_TEST_OPENS"], "a") as log:
        log.write(f"{path}\\n")
    return real_open(path)

job_files._open = counting_open
main(sys.argv[1:], prog_name="bulkrt")
"""


async def test_a_run_and_a_resume_read_the_job_twice(make_world: MakeWorld, tmp_path: Path) -> None:
    """A first run reads its job file twice (validate, send), and so does a resume (validate,
    which also checks the finished keys, counts what is left and what is superseded; send): the
    estimate of the finish reads nothing. The resumed run sends only the new items."""
    world = await make_world(users=2, limit=20)
    opens = tmp_path / "opens.txt"
    env = {**os.environ, "BULKRT_TEST_OPENS": str(opens)}
    job = world.job([(a, t, "retweet") for t in ("20", "21", "22") for a in ("acct001", "acct002")])

    async def run() -> list[str]:
        args = world.run_args(job)
        assert args[1:3] == ["-m", "bulkrt"]
        opens.write_text("")
        done = await run_cli([args[0], "-c", COUNTING_BULKRT, *args[3:]], env=env)
        assert done.returncode == 0, done.stderr.decode()
        return opens.read_text().splitlines()

    assert await run() == [str(job)] * 2
    job.write_text(job.read_text() + "acct001,23,retweet\nacct002,23,retweet\n")
    assert await run() == [str(job)] * 2
    tweets = {"20", "21", "22", "23"}
    assert (world.retweets("acct001"), world.retweets("acct002")) == (tweets, tweets)
    lines = world.lines()
    assert sorted((line["account"], line["tweet_id"]) for line in lines) == sorted(
        (a, t) for t in tweets for a in ("acct001", "acct002")
    )
    assert {line["status"] for line in lines} == {"ok"}
