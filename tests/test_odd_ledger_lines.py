"""Hand-edited ledger and journal lines that are valid JSON yet odd (found by the adversarial
pass adv20): a line nested deeper than json's recursion allows, and a lone surrogate escape in a
value. The readers (`status`, `report`, `rollback`) treat the first as an unreadable line, and the
report shows the second escaped; neither ends in a traceback or leaves an empty page behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_mistakes import bulkrt

GOOD = {
    "schema": 1, "ts": "2026-11-26T01:00:00.000Z", "run": "r1", "key": "k1", "campaign": "spring",
    "account": "acct001", "user_id": "1001", "tweet_id": "20", "action": "retweet",
    "status": "ok", "retweeted": True, "preexisting": False, "http": 200, "error": None,
    "attempts": 1,
}  # fmt: skip
#: deeper than the interpreter's recursion limit (1000) lets json decode
DEPTH = 1100


def _line(**changes: object) -> str:
    return json.dumps({**GOOD, **changes}) + "\n"


def _deep(**changes: object) -> str:
    """A ledger line with one more field holding arrays nested `DEPTH` deep: valid JSON."""
    return _line(**changes)[:-2] + ', "junk": ' + "[" * DEPTH + "]" * DEPTH + "}\n"


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["status", "--json"],
        ["report", "--html", "r.html"],
        ["rollback", "--out", "u.csv"],
    ],
)
def test_a_line_nested_too_deeply_is_skipped_as_unreadable(
    tmp_path: Path, command: list[str]
) -> None:
    """A ledger line nested deeper than json can read is warned about by number and skipped
    like any unreadable line; the command reads the rest and succeeds."""
    ledger = tmp_path / "L.jsonl"
    ledger.write_text(_line() + _line(key="k2", tweet_id="21") + _deep(key="k3", tweet_id="22"))
    done = bulkrt(command[0], str(ledger), *command[1:], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "line=3" in done.stderr and "nested too deeply" in done.stderr
    if command == ["status", "--json"]:
        assert json.loads(done.stdout)["by_status"]["ok"] == 2
    if command[0] == "rollback":
        undo = (tmp_path / "u.csv").read_text().splitlines()
        assert sorted(row.split(",")[2] for row in undo[1:]) == ["20", "21"]


def test_a_journal_line_nested_too_deeply_is_skipped(tmp_path: Path) -> None:
    """A sent journal line nested deeper than json can read is passed over as unreadable; the
    rollback that reads the journal still writes its undo job."""
    ledger = tmp_path / "L.jsonl"
    ledger.write_text(_line())
    journal = '{"e":"sent","key":"k1","campaign":"spring","account":"acct001","tweet_id":"20"}\n'
    (tmp_path / "L.jsonl.sent").write_text(
        journal + '{"e":"sent","key":' + "[" * DEPTH + "]" * DEPTH + "}\n"
    )
    done = bulkrt("rollback", str(ledger), "--out", "u.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert (tmp_path / "u.csv").read_text().splitlines()[1:] == ["spring-rollback,acct001,20,undo"]


def test_a_lone_surrogate_is_shown_escaped_in_the_report(tmp_path: Path) -> None:
    """A value holding a lone surrogate escape (``"\\ud800"``, which UTF-8 cannot hold) is
    shown as that escape in the report's page; the page is written whole."""
    ledger = tmp_path / "L.jsonl"
    error = {"type": "network", "title": "t", "detail": "d"}
    odd = _line(key="k2", campaign="\ud800", status="error", retweeted=None, preexisting=None,
                http=None, error=error)  # fmt: skip
    assert odd.isascii()  # json.dumps writes it as the escape
    ledger.write_text(_line() + odd)
    done = bulkrt("report", str(ledger), "--html", "r.html", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "\\ud800" in page and "</html>" in page
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".r.html")] == []
