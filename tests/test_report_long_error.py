"""An error's detail as long as a hostile server's body (adversarial pass 20, F7): the report's
example shows its beginning and how much was left out, so a 2 MB detail makes neither a 2 MB page
nor a model that holds it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bulkrt.core.items import ErrorDetail, Status
from bulkrt.reporting.model import EXAMPLE_CHARS
from tests.test_mistakes import bulkrt
from tests.test_report import OK, at, build


def test_a_long_error_detail_is_shortened_in_the_example(tmp_path: Path) -> None:
    """The example of an error kind whose detail is 2,000,000 characters shows its first
    `EXAMPLE_CHARS` and the count of the rest, in the model and in the page `bulkrt report`
    writes; a short detail stays whole."""
    huge = "x" * 2_000_000
    lines = [
        replace(OK, ts=at(0), key="a"),
        replace(OK, ts=at(1), key="b", status=Status.ERROR, retweeted=None, http=503,
                error=ErrorDetail("service-unavailable", "Service Unavailable", huge)),
        replace(OK, ts=at(2), key="c", status=Status.ERROR, retweeted=None, http=None,
                error=ErrorDetail("network", "connection reset", "short detail")),
    ]  # fmt: skip
    examples = {kind.kind: kind.example for kind in build(lines).errors}
    shortened = examples["service-unavailable"].error
    assert shortened is not None and shortened.detail is not None
    assert shortened.detail.startswith("x" * EXAMPLE_CHARS)
    assert shortened.detail.endswith(f"… ({2_000_000 - EXAMPLE_CHARS:,} more characters)")
    assert examples["network"].error == lines[2].error
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text("".join(line.to_json() + "\n" for line in lines), encoding="utf-8")
    page = tmp_path / "report.html"
    done = bulkrt("report", str(ledger), "--html", str(page), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = page.read_text(encoding="utf-8")
    assert len(text) < 100_000
    assert f"({2_000_000 - EXAMPLE_CHARS:,} more characters)" in text
    assert "short detail" in text
