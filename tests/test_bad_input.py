"""Bad input as a table: each case exits 2 naming FILE:LINE: field, and leaves the ledger alone.

`CASES` is the table, run against both `bulkrt validate` and `bulkrt run`: `write_case` writes
a case's files into an empty directory and returns the arguments naming them (``--ledger``
included); the real CLI runs there with `ENV` and must exit 2, print a stderr line starting with
``expect``, and leave `LEDGER_LINE` the whole ledger.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulkrt.cli import main

#: a valid accounts file: an OAuth 1.0a account (a secret from the environment), an OAuth 2.0 one
GOOD_ACCOUNTS: dict[str, object] = {
    "accounts": {
        "acct001": {
            "user_id": "1001",
            "oauth1": {
                "consumer_key": "ck-acct001",
                "consumer_secret": "env:BULKRT_TEST_CONSUMER_SECRET",
                "access_token": "1001-at-acct001-xxxxxxxx",
                "access_token_secret": "ats-acct001-xxxxxxxx",
            },
        },
        "acct002": {
            "user_id": "1002",
            "oauth2": {
                "client_id": "cid-acct002",
                "client_secret": None,
                "access_token": "at2-acct002-xxxxxxxx",
                "refresh_token": "rt2-acct002-xxxxxxxx",
                "expires_at": "2026-11-26T02:00:00Z",
            },
        },
    }
}
#: the environment every case runs with
ENV = {"BULKRT_TEST_CONSUMER_SECRET": "cs-acct001-xxxxxxxx", "BULKRT_TEST_UNSET": None}
HEADER = b"account,tweet_id,action\n"
GOOD_ROW = b"acct001,1460323737035677698,retweet\n"
#: a ledger line that every case must leave exactly as it was
LEDGER_LINE = (
    b'{"schema":1,"ts":"2026-11-26T01:00:00Z","run":"r0","key":"k1","campaign":"c",'
    b'"account":"acct001","user_id":"1001","tweet_id":"20","action":"retweet","status":"ok",'
    b'"retweeted":true,"preexisting":false,"http":200,"error":null,"attempts":1}\n'
)


def _accounts_with(path: tuple[str, ...], value: object) -> dict[str, object]:
    """GOOD_ACCOUNTS with the value at ``path`` replaced (or removed when ``value`` is ...)."""
    document = json.loads(json.dumps(GOOD_ACCOUNTS))
    node = document
    for part in path[:-1]:
        node = node[part]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return document  # type: ignore[no-any-return]


def _account_twice() -> tuple[bytes, int]:
    """GOOD_ACCOUNTS (indented) with acct002's entry renamed acct001, as two accounts files
    merged by hand leave it; and the line of the second ``"acct001":``."""
    text = json.dumps(GOOD_ACCOUNTS, indent=2).replace('"acct002":', '"acct001":', 1)
    lines = text.splitlines()
    second = [n for n, line in enumerate(lines, 1) if '"acct001":' in line][1]
    return text.encode(), second


ACCOUNT_TWICE, ACCOUNT_TWICE_LINE = _account_twice()


@dataclass(frozen=True)
class BadInput:
    """One bad input: the files to write, how to call the command, and the message it must print."""

    #: the test id
    id: str
    #: what the case pins, in one sentence
    doc: str
    #: the job file's bytes
    job: bytes
    #: the stderr line must start with this (``FILE:LINE: field:``)
    expect: str
    job_name: str = "jobs.csv"
    #: the accounts file: a document to write as JSON, or raw bytes
    accounts: dict[str, object] | bytes = field(default_factory=lambda: GOOD_ACCOUNTS)
    #: feed ``job`` on standard input instead of a file (``-`` with ``--format``)
    stdin_format: str | None = None


def _csv(*rows: bytes) -> bytes:
    return HEADER + b"".join(rows)


CASES = [
    BadInput("empty-file", "An empty CSV file has no header.", b"", "jobs.csv:1: header:"),
    BadInput(
        "header-only", "A CSV header with no rows holds no items.", HEADER, "jobs.csv:1: file:"
    ),
    BadInput(
        "blank-lines-only", "A file of blank lines is empty.", b"\n\n  \n", "jobs.csv:1: header:"
    ),
    BadInput(
        "missing-column",
        "A header without the action column names that column.",
        b"account,tweet_id\nacct001,20\n",
        "jobs.csv:1: action: missing column",
    ),
    BadInput(
        "repeated-column",
        "A column named twice in the header is refused.",
        b"account,tweet_id,action,account\nacct001,20,retweet,acct002\n",
        "jobs.csv:1: account: column appears more than once",
    ),
    BadInput(
        "extra-value",
        "A row with more values than the header has columns is refused.",
        _csv(GOOD_ROW, b"acct001,20,retweet,surprise\n"),
        "jobs.csv:3: row: 4 values",
    ),
    BadInput(
        "missing-value",
        "A row with fewer values than the header has columns is refused.",
        _csv(b"acct001,20\n"),
        "jobs.csv:2: row: 2 values",
    ),
    BadInput(
        "empty-field",
        "An empty required field is missing.",
        _csv(b"acct001,,retweet\n"),
        "jobs.csv:2: tweet_id: missing",
    ),
    BadInput(
        "unknown-account",
        "An account that the accounts file lacks is refused.",
        _csv(b"acct999,20,retweet\n"),
        "jobs.csv:2: account: unknown account 'acct999'",
    ),
    BadInput(
        "letters-in-id",
        "A tweet_id with letters is refused.",
        _csv(b"acct001,12ab34,retweet\n"),
        "jobs.csv:2: tweet_id: not a Tweet ID",
    ),
    BadInput(
        "twenty-digits",
        "A 20-digit tweet_id is too long.",
        _csv(b"acct001,12345678901234567890,retweet\n"),
        "jobs.csv:2: tweet_id: too long (20 digits",
    ),
    BadInput(
        "above-int64",
        "A 19-digit tweet_id above 2**63-1 cannot exist.",
        _csv(b"acct001,9999999999999999999,retweet\n"),
        "jobs.csv:2: tweet_id: too large",
    ),
    BadInput(
        "negative-id",
        "A negative tweet_id is refused.",
        _csv(b"acct001,-20,retweet\n"),
        "jobs.csv:2: tweet_id: not a Tweet ID",
    ),
    BadInput(
        "decimal-id",
        "A decimal tweet_id is refused.",
        _csv(b"acct001,20.5,retweet\n"),
        "jobs.csv:2: tweet_id: '20.5' is a decimal number",
    ),
    BadInput(
        "leading-zero",
        "A tweet_id with a leading zero is refused rather than guessed at.",
        _csv(b"acct001,020,retweet\n"),
        "jobs.csv:2: tweet_id: leading zero",
    ),
    BadInput(
        "arabic-digits",
        "Non-ASCII digits are not a Tweet ID.",
        _csv("acct001,\u0661\u0662\u0663,retweet\n".encode()),
        "jobs.csv:2: tweet_id: not a Tweet ID",
    ),
    BadInput(
        "other-site-url",
        "A post URL on another site is refused.",
        _csv(b"acct001,https://example.com/jack/status/20,retweet\n"),
        "jobs.csv:2: tweet_id: not a post URL",
    ),
    BadInput(
        "profile-url",
        "An x.com URL that is not a post is refused.",
        _csv(b"acct001,https://x.com/jack,retweet\n"),
        "jobs.csv:2: tweet_id: not a post URL",
    ),
    BadInput(
        "unknown-action",
        "An action other than retweet, undo or unretweet is refused.",
        _csv(b"acct001,20,like\n"),
        "jobs.csv:2: action: unknown action 'like'",
    ),
    BadInput(
        "bom-keeps-line-numbers",
        "A BOM is accepted and the bad row after it is still named by its line.",
        b"\xef\xbb\xbf" + _csv(GOOD_ROW, b"acct001,x,retweet\n"),
        "jobs.csv:3: tweet_id:",
    ),
    BadInput(
        "crlf-keeps-line-numbers",
        "CRLF line endings are accepted and a bad row is named by its line.",
        b"account,tweet_id,action\r\nacct001,20,retweet\r\n\r\nacct001,20,boost\r\n",
        "jobs.csv:4: action: unknown action 'boost'",
    ),
    BadInput(
        "invalid-utf8-csv",
        "Invalid UTF-8 in a CSV field names the field.",
        _csv(b"acct\xff01,20,retweet\n"),
        "jobs.csv:2: account: invalid UTF-8",
    ),
    BadInput(
        "duplicate-id",
        "Two rows with the same id are refused at the second.",
        b"account,tweet_id,action,id\nacct001,20,retweet,a1\nacct001,21,retweet,a1\n",
        "jobs.csv:3: id: duplicate id 'a1' (first at jobs.csv:2)",
    ),
    BadInput(
        "reserved-id",
        "An id that looks like a derived key is refused.",
        b"account,tweet_id,action,id\nacct001,20,retweet,[x]\n",
        "jobs.csv:2: id: may not start with '['",
    ),
    BadInput(
        "unterminated-quote",
        "An unterminated quote swallows the rest of the file and the row is refused at its start.",
        _csv(b'acct001,"20,retweet\n', GOOD_ROW),
        "jobs.csv:2: row: 2 values",
    ),
    BadInput(
        "nul-byte",
        "A NUL byte inside a field is refused as a control character.",
        _csv(b"acct001,2\x000,retweet\n"),
        "jobs.csv:2: tweet_id: control character",
    ),
    BadInput(
        "late-bad-row",
        "A bad row after many good ones and blank lines is named by its physical line.",
        _csv(*([GOOD_ROW] * 100), b"\n", b"acct001,20,undo,\n"),
        "jobs.csv:103: row: 4 values",
    ),
    BadInput(
        "gzip-bad-row",
        "A gzipped job is read through gzip and its bad row named by line.",
        gzip.compress(_csv(GOOD_ROW, b"acct001,20x,retweet\n")),
        "jobs.csv.gz:3: tweet_id:",
        job_name="jobs.csv.gz",
    ),
    BadInput(
        "not-gzip",
        "A .gz file that is not gzip is refused, not crashed on.",
        _csv(GOOD_ROW),
        "jobs.csv.gz:1: file: named .gz but not gzip-compressed: rename it without .gz",
        job_name="jobs.csv.gz",
    ),
    BadInput(
        "unknown-format",
        "A file whose name names no format needs --format.",
        _csv(GOOD_ROW),
        "jobs.txt: file: unknown format",
        job_name="jobs.txt",
    ),
    BadInput(
        "stdin-bad-row",
        "A bad row on standard input is named as <stdin> with its line.",
        _csv(GOOD_ROW, b"acct001,20,undo-it\n"),
        "<stdin>:3: action: unknown action",
        stdin_format="csv",
    ),
    BadInput(
        "csv-cr-line-ends",
        "adv23 A5: a CSV whose lines end in CR only (classic Mac OS) is named as such, not with "
        "Python's advice to open it in universal-newline mode.",
        b"account,tweet_id,action\racct001,20,retweet\r",
        "jobs.csv:1: row: not valid CSV: its lines end in a carriage return only",
    ),
    BadInput(
        "jsonl-empty",
        "An empty JSONL file holds no items.",
        b"",
        "jobs.jsonl:1: file: no items",
        job_name="jobs.jsonl",
    ),
    BadInput(
        "jsonl-broken-line",
        "A line of broken JSON is named by its line.",
        b'{"account":"acct001","tweet_id":"20","action":"retweet"}\n{"account":"acct001",\n',
        "jobs.jsonl:2: row: not valid JSON",
        job_name="jobs.jsonl",
    ),
    BadInput(
        "jsonl-field-twice",
        "adv23 A4: a JSONL row naming a field twice is refused naming it, as a CSV header naming "
        "a column twice is (JSON kept the last value silently: one item of acct002).",
        b'{"account":"acct001","tweet_id":"20","action":"retweet"}\n'
        b'{"account":"acct001","tweet_id":"21","action":"retweet","account":"acct002"}\n',
        "jobs.jsonl:2: account: field appears more than once in the row",
        job_name="jobs.jsonl",
    ),
    BadInput(
        "jsonl-array",
        "A JSON array instead of an object is refused.",
        b'["acct001","20","retweet"]\n',
        "jobs.jsonl:1: row: must be a JSON object, not an array",
        job_name="jobs.jsonl",
    ),
    BadInput(
        "jsonl-invalid-utf8",
        "Invalid UTF-8 on a JSONL line is named by its line.",
        b'{"account":"acct001","tweet_id":"20","action":"retweet"}\n{"account":"\xfe"}\n',
        "jobs.jsonl:2: row: invalid UTF-8",
        job_name="jobs.jsonl",
    ),
    BadInput(
        "jsonl-lone-surrogate-id",
        "A lone UTF-16 surrogate in a JSONL id cannot be written as UTF-8 and is refused.",
        b'{"account":"acct001","tweet_id":"20","action":"retweet","id":"a\\ud800"}\n',
        "jobs.jsonl:1: id: invalid UTF-8",
        job_name="jobs.jsonl",
    ),
    BadInput(
        "jsonl-lone-surrogate-campaign",
        "A lone UTF-16 surrogate in a JSONL campaign is refused like one in any text field.",
        b'{"account":"acct001","tweet_id":"20","action":"retweet","campaign":"\\udfff"}\n',
        "jobs.jsonl:1: campaign: invalid UTF-8",
        job_name="jobs.jsonl",
    ),
    BadInput(
        "jsonl-number-id-decimal",
        "A JSON number with a fraction is not a tweet_id.",
        b'{"account":"acct001","tweet_id":20.5,"action":"retweet"}\n',
        "jobs.jsonl:1: tweet_id: a JSON number with a decimal point or exponent (20.5) is not "
        "an exact ID",
        job_name="jobs.jsonl",
    ),
    BadInput(
        "jsonl-missing-field",
        "A JSON object without an action names the field.",
        b'{"account":"acct001","tweet_id":"20"}\n',
        "jobs.jsonl:1: action: missing",
        job_name="jobs.jsonl",
    ),
    BadInput(
        "accounts-missing-secret",
        "An OAuth 1.0a block without its consumer secret is named by JSON path.",
        _csv(GOOD_ROW),
        "accounts.json: accounts.acct001.oauth1.consumer_secret: missing",
        accounts=_accounts_with(("accounts", "acct001", "oauth1", "consumer_secret"), ...),
    ),
    BadInput(
        "accounts-unset-env",
        "An env: secret whose variable is unset is named with the variable.",
        _csv(GOOD_ROW),
        "accounts.json: accounts.acct002.oauth2.refresh_token: environment variable "
        "BULKRT_TEST_UNSET is not set",
        accounts=_accounts_with(
            ("accounts", "acct002", "oauth2", "refresh_token"), "env:BULKRT_TEST_UNSET"
        ),
    ),
    BadInput(
        "accounts-broken-json",
        "An accounts file that is not JSON is named with its line.",
        _csv(GOOD_ROW),
        "accounts.json:2: json:",
        accounts=b'{"accounts": {\n  "acct001": ,\n}}\n',
    ),
    BadInput(
        "accounts-no-user-id",
        "An account without user_id is refused.",
        _csv(GOOD_ROW),
        "accounts.json: accounts.acct001.user_id: missing",
        accounts=_accounts_with(("accounts", "acct001", "user_id"), ...),
    ),
    BadInput(
        "accounts-account-twice",
        "adv23 A3: an account named twice (two files merged by hand) is refused at the second "
        "naming; JSON would keep the second entry, another user's, and send acct001's rows as "
        "that user (validate said ok).",
        _csv(GOOD_ROW),
        f"accounts.json:{ACCOUNT_TWICE_LINE}: accounts.acct001: account named twice (first on "
        f"line 3)",
        accounts=ACCOUNT_TWICE,
    ),
]


def write_case(case: BadInput, directory: Path) -> list[str]:
    """Write the case's files into ``directory`` (the working directory) and return the arguments
    that name them: the job (or ``-`` and ``--format``), ``--accounts`` and ``--ledger``.

    The ledger holds `LEDGER_LINE`; after the command it must still hold exactly that.
    """
    accounts = directory / "accounts.json"
    raw = case.accounts if isinstance(case.accounts, bytes) else json.dumps(case.accounts).encode()
    accounts.write_bytes(raw)
    accounts.chmod(0o600)
    (directory / "ledger.jsonl").write_bytes(LEDGER_LINE)
    if case.stdin_format:
        job_args = ["-", "--format", case.stdin_format]
    else:
        (directory / case.job_name).write_bytes(case.job)
        job_args = [case.job_name]
    return [*job_args, "--accounts", "accounts.json", "--ledger", "ledger.jsonl"]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_input_exits_2_naming_the_spot_and_leaves_the_ledger_alone(
    case: BadInput, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each bad input exits 2, prints FILE:LINE: field:, and leaves the ledger byte-identical;
    `run` takes no lock and sends nothing (its API base is a closed port: a request would end
    as an error line in the ledger)."""
    monkeypatch.chdir(tmp_path)
    args = write_case(case, tmp_path)
    if command == "run":
        args = [*args, "--api-base", "http://127.0.0.1:9", "--no-progress"]

    result = CliRunner(env=ENV).invoke(
        main, [command, *args], input=case.job if case.stdin_format else None
    )
    assert not (tmp_path / "ledger.jsonl.lock").exists()
    assert not (tmp_path / "ledger.jsonl.sent").exists()

    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert any(line.startswith(case.expect) for line in lines), result.stderr
    assert "nothing was sent" in lines[-1]
    assert (tmp_path / "ledger.jsonl").read_bytes() == LEDGER_LINE
    assert "ok:" not in result.stdout


@pytest.mark.parametrize(
    "job",
    [b"account,tweet_id,action\racct001,20,retweet\r", b"account,tweet_id,action\racct001,20\r\n"],
    ids=["cr-only", "cr-then-crlf"],
)
def test_a_csv_whose_lines_end_in_cr_is_not_called_empty(
    job: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """adv23 A5: a CSV saved with CR-only line ends (classic Mac OS, some exports) is refused
    with one problem, its line ends; it was also called "file is empty; expected a header row",
    which it is not, sending the operator after the wrong problem."""
    monkeypatch.chdir(tmp_path)
    case = BadInput("cr", "", job, "")
    result = CliRunner(env=ENV).invoke(main, ["validate", *write_case(case, tmp_path)])
    assert result.exit_code == 2, result.output
    problems = result.stderr.splitlines()[:-1]
    assert problems == [
        "jobs.csv:1: row: not valid CSV: its lines end in a carriage return only (CR, as "
        "classic Mac OS and some exports write them): save it with LF or CRLF line ends"
    ], result.stderr


@pytest.mark.parametrize(
    ("name", "job", "problem"),
    [
        ("jobs.csv", b"", "1: header: the file is empty; expected a header row"),
        ("jobs.csv", b"\x1f", "1: header: its only line is blank (white space or control"),
        ("jobs.csv", b"\n \t\n\x1c\x1d\r\n", "1: header: all 3 of its lines are blank"),
        ("jobs.jsonl", b"", "1: file: no items (the file is empty)"),
        ("jobs.jsonl", b"\x1f\n\n", "1: file: no items (all 2 of its lines are blank"),
    ],
    ids=["csv-empty", "csv-one-separator", "csv-blank-lines", "jsonl-empty", "jsonl-blank"],
)
def test_a_file_of_blank_lines_is_not_called_empty(
    name: str, job: bytes, problem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """adv24: a file holding one byte 0x1F (a stray ASCII unit separator, which Python reads as
    white space) was refused as "file is empty": the operator, finding bytes in it, is told what
    it holds (only blank lines) and an empty file is still called empty."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_bytes(job)
    (tmp_path / "accounts.json").write_text(json.dumps(GOOD_ACCOUNTS))
    (tmp_path / "accounts.json").chmod(0o600)
    result = CliRunner(env=ENV).invoke(main, ["validate", name, "--accounts", "accounts.json"])
    assert result.exit_code == 2, result.output
    problems = result.stderr.splitlines()[:-1]
    assert len(problems) == 1 and problems[0].startswith(f"{name}:{problem}"), result.stderr
    assert "nothing was sent" in result.stderr.splitlines()[-1]


def test_the_table_has_at_least_25_cases_with_distinct_ids() -> None:
    """The issue asks for 25 or more bad-input cases; ids must be unique to be addressable."""
    assert len(CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES)
