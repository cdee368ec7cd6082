"""`bulkrt status`: items counted by their latest line, per status, action, account, error kind."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulkrt.cli import main
from bulkrt.core.items import Action, ErrorDetail, Status
from bulkrt.ledger.counts import summarise_ledger
from bulkrt.ledger.record import LedgerRecord

BASE = LedgerRecord(
    ts="2026-11-26T01:00:00Z",
    run="run-1",
    key="k",
    campaign="spring",
    account="acct001",
    user_id="1001",
    tweet_id="20",
    action=Action.RETWEET,
    status=Status.OK,
    retweeted=True,
    preexisting=False,
    http=200,
    error=None,
    attempts=1,
)
NOT_FOUND = ErrorDetail("https://api.twitter.com/2/problems/resource-not-found", "Not Found")
NETWORK = ErrorDetail("network", "connection reset")


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    """A ledger of four items over two accounts; item b failed once, then succeeded on resume."""
    path = tmp_path / "ledger.jsonl"
    records = [
        replace(BASE, key="a"),
        replace(BASE, key="b", status=Status.ERROR, error=NETWORK, http=None, retweeted=None),
        replace(BASE, key="c", account="acct002", status=Status.REJECTED, error=NOT_FOUND),
        replace(BASE, key="d", account="acct002", action=Action.UNDO, status=Status.ERROR,
                error=NETWORK),
        replace(BASE, key="b", run="run-2"),
    ]  # fmt: skip
    path.write_text("".join(r.to_json() + "\n" for r in records) + '{"schema":1,"ts"')
    return path


def test_items_are_counted_by_their_latest_line(ledger: Path) -> None:
    """An item that failed and then succeeded counts once, as ok; its old error is not a kind."""
    summary = summarise_ledger(ledger)
    assert (summary.lines, summary.unreadable, summary.items) == (5, 1, 4)
    assert summary.by_status == {"ok": 2, "rejected": 1, "error": 1, "superseded": 0}
    assert summary.by_account == {
        "acct001": {"ok": 2, "rejected": 0, "error": 0, "superseded": 0},
        "acct002": {"ok": 0, "rejected": 1, "error": 1, "superseded": 0},
    }
    assert summary.by_action == {
        "retweet": {"ok": 2, "rejected": 1, "error": 0, "superseded": 0},
        "undo": {"ok": 0, "rejected": 0, "error": 1, "superseded": 0},
    }
    assert summary.errors == {"network": 1, "resource-not-found": 1}


def test_json_output_is_stable_sorted_and_complete(ledger: Path) -> None:
    """`--json` prints sorted JSON with every status present, for scripts."""
    result = CliRunner().invoke(main, ["status", str(ledger), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert list(document) == sorted(document)
    assert document["by_status"] == {"error": 1, "ok": 2, "rejected": 1, "superseded": 0}
    assert document["items"] == 4
    assert document["unreadable_lines"] == 1
    assert document["ledger"] == str(ledger)
    assert result.stdout == json.dumps(document, indent=2, sort_keys=True) + "\n"


def test_terminal_output_names_counts_accounts_and_error_kinds(ledger: Path) -> None:
    """The terminal form gives the totals line, the account rows and the error kinds."""
    result = CliRunner().invoke(main, ["status", str(ledger)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"{ledger}: 4 items: 2 ok, 1 rejected, 1 error"
    assert "1 unreadable line(s) skipped (torn by a crash?)" in lines
    rows = {line.split()[1]: line.split()[3:12:2] for line in lines if "acct00" in line}
    assert rows == {"acct001": ["2", "0", "0", "2"], "acct002": ["0", "1", "1", "2"]}
    assert any("resource-not-found" in line and "1" in line for line in lines)
    assert "ledger_torn_line_skipped" in result.stderr


@pytest.mark.parametrize("as_json", [False, True])
def test_a_missing_ledger_exits_2_with_a_message(tmp_path: Path, as_json: bool) -> None:
    """A ledger that does not exist is bad input: exit 2 and a message naming it."""
    path = tmp_path / "nope.jsonl"
    result = CliRunner().invoke(main, ["status", str(path), *(["--json"] if as_json else [])])
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"bulkrt status: {path}: cannot read the ledger: No such file or directory\n"
    )
    assert result.stdout == ""


def test_an_empty_ledger_has_no_items(tmp_path: Path) -> None:
    """An empty ledger is valid: zero items, every status listed with 0."""
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    summary = summarise_ledger(path)
    empty = {"ok": 0, "rejected": 0, "error": 0, "superseded": 0}
    assert (summary.items, summary.by_status) == (0, empty)
