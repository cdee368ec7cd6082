"""`bulkrt report`: one self-contained HTML page showing what a ledger's runs did."""

from __future__ import annotations

from pathlib import Path

import click

from bulkrt import logs
from bulkrt.atomic import replacing
from bulkrt.commands.options import Seconds
from bulkrt.commands.outputs import not_a_ledger, refusal
from bulkrt.core.tiers import Tier, limit_model
from bulkrt.errors import LedgerError
from bulkrt.exitcodes import ExitCode
from bulkrt.ledger.counts import summarise_ledger
from bulkrt.reporting.model import Report, ReportBuilder
from bulkrt.reporting.page import render_html

__all__ = ["build_report", "command"]


def build_report(ledger: Path, *, tier: Tier, limit: int | None, window: float | None) -> Report:
    """Read ``ledger`` into a `Report` in one parse of each line: the summary hands the builder
    every line it counts, so the chart and the totals always agree, even when a run appends to
    the ledger meanwhile."""
    builder = ReportBuilder()
    summary = summarise_ledger(ledger, each=builder.add_lines)
    return builder.build(summary, limit_model(tier, limit=limit, window=window).retweet)


#: shown at the end of `--help`
_EXAMPLES = "\b\nExamples:\n" + "\n".join(
    [
        "  bulkrt report spring.jsonl --html spring.html --tier pro",
        "  bulkrt report bulkrt-demo/ledger.jsonl --html demo.html --limit 5 --window 3",
    ]
)


@click.command("report", epilog=_EXAMPLES)
@click.argument("ledger", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--html",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The HTML page to write (self-contained: open it in any browser, offline).",
)
@click.option(
    "--tier",
    type=click.Choice([t.value for t in Tier]),
    default=Tier.PRO.value,
    show_default=True,
    help="The rate limits the requests chart compares with.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Requests per window (as for run).")
@click.option("--window", type=Seconds(min=0.001), help="Window seconds (as for run).")
@click.option("--force", is_flag=True, help="Replace --html if it exists (never a ledger).")
def command(
    ledger: Path, out: Path, tier: str, limit: int | None, window: float | None, force: bool
) -> None:
    """Write an HTML report of LEDGER: totals, requests over time against the rate-limit
    windows, per-account progress, the kinds of error with an example each, and the runs.

    Give the --tier (or --limit/--window) the runs used, so the chart marks their limits.
    Exit 2 when the ledger cannot be read or the page cannot be written.
    """
    logs.configure()
    wrong = not_a_ledger(ledger)
    if wrong is not None:
        click.echo(f"bulkrt report: {ledger} {wrong}", err=True)
        raise SystemExit(ExitCode.BAD_INPUT)
    refused = refusal(out, force=force, inputs={"the ledger it reads": ledger})
    if refused is not None:
        click.echo(f"bulkrt report: --html {out} {refused}; nothing written", err=True)
        raise SystemExit(ExitCode.BAD_INPUT)
    try:
        report = build_report(ledger, tier=Tier(tier), limit=limit, window=window)
        page = render_html(report, ledger=str(ledger))
        # a value read from a hand-edited line may hold a lone surrogate (JSON's "\ud800"),
        # which UTF-8 cannot hold: the page shows it as that escape
        page = page.encode("utf-8", "backslashreplace").decode("utf-8")
        with replacing(out) as stream:  # never a partial page, nor an empty file, on failure
            stream.write(page)
    except LedgerError as exc:
        click.echo(f"bulkrt report: {exc}", err=True)
        raise SystemExit(ExitCode.BAD_INPUT) from None
    except OSError as exc:
        click.echo(f"bulkrt report: cannot write {out}: {exc.strerror or exc}", err=True)
        raise SystemExit(ExitCode.BAD_INPUT) from None
    status = report.summary.by_status
    click.echo(
        f"bulkrt report: {out}: {report.summary.items} items ({status['ok']} ok, "
        f"{status['rejected']} rejected, {status['error']} error), {len(report.accounts)} "
        f"account(s), {report.requests} requests; open it in a browser"
    )
