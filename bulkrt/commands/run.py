"""`bulkrt run`: run one or more job files, appending each finished item to the ledger.

Re-running the same command resumes: items the ledger holds as ``ok`` or ``rejected`` are skipped.
Exit codes: 0 every item ok, 1 some item rejected or in error, 2 bad usage or input (nothing
sent, ledger untouched), 3 the first answers proved the API base wrong (stopped early, nothing
marked finished), 130/143 stopped by SIGINT/SIGTERM after a clean stop.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click

from bulkrt import logs
from bulkrt.commands.options import (
    REDIS_PREFIX,
    Seconds,
    accounts_option,
    api_base_option,
    campaign_option,
    format_option,
    grace_option,
    insecure_http_option,
    jobs_argument,
    lease_option,
    limit_options,
    problems_document,
    redis_option,
    sending_options,
    timeout_options,
)
from bulkrt.commands.outputs import ledger_refusal
from bulkrt.core.items import Action
from bulkrt.core.plan import Timing
from bulkrt.core.tiers import LimitModel, Tier
from bulkrt.errors import InputError, LedgerError, Problem, RedisUnavailable
from bulkrt.exitcodes import ExitCode
from bulkrt.jobs.loader import JobFormat
from bulkrt.shell.client import Timeouts
from bulkrt.shell.progress import Progress
from bulkrt.shell.runner import RunSettings, run_job

__all__ = ["command"]

#: problems printed before the rest are only counted
_SHOW_PROBLEMS = 50


def _estimate(
    pending: Mapping[str, Sequence[Action]],
    model: LimitModel,
    *,
    concurrency: int,
    max_rps: float | None,
) -> Timing | None:
    """When the pending requests of a dry run may go: the job simulated against the limit model."""
    # Loaded here, not with the command: the virtual clock and the sandbox's state are needed
    # only once the job has been read.
    from bulkrt.simulation.estimate import estimate

    return estimate(pending, model, concurrency=concurrency, max_rps=max_rps)


#: the highest price per request, in dollars, and the finest step of one (``--price-*``)
_MAX_PRICE = Decimal(1000)
_PRICE_STEP = Decimal("1e-12")


def _price(ctx: click.Context, param: click.Parameter, value: str | None) -> Decimal | None:
    """A price in dollars per request: finite, 0 to `_MAX_PRICE`, no finer than `_PRICE_STEP`
    (so a cost stays a plain, short number); anything else exits 2 naming the option."""
    if value is None:
        return None
    try:
        price = Decimal(value)
    except InvalidOperation:
        raise click.BadParameter(f"{value!r} is not a price in dollars") from None
    if not price.is_finite():
        raise click.BadParameter(f"{value!r} is not a price in dollars")
    if price < 0:
        raise click.BadParameter("a price cannot be negative")
    if price > _MAX_PRICE:
        raise click.BadParameter(f"{value!r} is more than {_MAX_PRICE} dollars per request")
    step = _PRICE_STEP.adjusted()
    if price and (price.adjusted() < step or price != price.quantize(_PRICE_STEP)):
        raise click.BadParameter(f"{value!r} is finer than {_PRICE_STEP:f} dollars")
    return price


#: shown at the end of `--help`
_EXAMPLES = "\b\nExamples:\n" + "\n".join(
    [
        "  bulkrt run spring.csv --accounts accounts.json --ledger spring.jsonl --dry-run",
        "  bulkrt run spring.csv --accounts accounts.json --ledger spring.jsonl",
        "  bulkrt run spring.csv --accounts accounts.json --ledger spring.jsonl --json",
        "  zcat big.csv.gz | bulkrt run - --format csv --accounts accounts.json --ledger big.jsonl",
    ]
)


@click.command("run", epilog=_EXAMPLES)
@jobs_argument
@accounts_option
@click.option(
    "--ledger",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The JSONL ledger to append outcomes to (created if missing).",
)
@insecure_http_option
@api_base_option
@limit_options
@sending_options
@click.option(
    "--backoff-initial",
    default=1.0,
    show_default=True,
    type=Seconds(min=0, max=3600),
    help="Seconds before the first retry of a transient failure (then doubling, jittered).",
)
@click.option(
    "--backoff-max",
    default=60.0,
    show_default=True,
    type=Seconds(min=0, max=86400),
    help="The longest wait between two attempts of one item.",
)
@click.option("--max-rps", type=Seconds(min=0.01), help="An app-wide cap on requests per second.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Plan only: counts, expected duration and cost; send and write nothing.",
)
@campaign_option
@format_option
@timeout_options
@click.option(
    "--price-retweet", callback=_price, help="Dollars per retweet request, for the dry-run cost."
)
@click.option(
    "--price-undo", callback=_price, help="Dollars per undo request, for the dry-run cost."
)
@grace_option
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Live progress display (default: when stderr is a terminal).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the summary (or the dry run's plan) as one JSON object on stdout, for scripts.",
)
@redis_option
@lease_option
@click.option("--log-json", is_flag=True, help="Log JSON lines on stderr.")
@click.option("-v", "--verbose", is_flag=True, help="Log every state change, not only warnings.")
def command(
    jobs: tuple[str, ...],
    accounts_path: Path,
    ledger: Path,
    allow_insecure_http: bool,
    api_base: str,
    tier: str,
    limit: int | None,
    window: float | None,
    concurrency: int,
    max_attempts: int,
    backoff_initial: float,
    backoff_max: float,
    max_rps: float | None,
    dry_run: bool,
    campaign: str | None,
    fmt: str | None,
    connect_timeout: float,
    read_timeout: float,
    price_retweet: Decimal | None,
    price_undo: Decimal | None,
    grace: float,
    progress: bool | None,
    as_json: bool,
    redis_url: str | None,
    lease_seconds: float,
    log_json: bool,
    verbose: bool,
) -> None:
    """Run the items of JOB files (CSV or JSONL, '.gz', '-' for stdin) against the X API.

    Every account is kept inside its rate limits; each finished item's outcome is appended to
    the ledger. Re-running the same command resumes where it stopped.
    """
    display = Progress(live=progress, json=as_json)
    level = logging.INFO if verbose or not display.live else logging.WARNING
    logs.configure(json=log_json, level=level)
    settings = RunSettings(
        jobs=jobs,
        accounts=accounts_path,
        ledger=ledger,
        api_base=api_base,
        tier=Tier(tier),
        limit=limit,
        window=window,
        concurrency=concurrency,
        max_attempts=max_attempts,
        backoff_initial=backoff_initial,
        backoff_max=backoff_max,
        max_rps=max_rps,
        dry_run=dry_run,
        estimate=functools.partial(_estimate, concurrency=concurrency, max_rps=max_rps),
        campaign=campaign,
        fmt=JobFormat(fmt) if fmt else None,
        timeouts=Timeouts(
            connect=connect_timeout, read=read_timeout, total=connect_timeout + 2 * read_timeout
        ),
        price_retweet=price_retweet,
        price_undo=price_undo,
        grace=grace,
    )
    refused = ledger_refusal(
        ledger,
        inputs={
            **{f"the job {job}": Path(job) for job in jobs if job != "-"},
            "the accounts file": accounts_path,
        },
    )
    if refused is not None:
        _json_problems(as_json, 1, [Problem(str(ledger), None, "--ledger", refused)])
        click.echo(f"bulkrt run: --ledger {ledger}: {refused}; nothing was sent", err=True)
        raise SystemExit(ExitCode.BAD_INPUT)
    try:
        if redis_url is not None and not dry_run:
            # Loaded here: without --redis, the multi-machine mode (and redis-py) never is.
            from bulkrt.fleet.driver import drive_job

            code = drive_job(
                settings, redis_url, display, prefix=REDIS_PREFIX, lease_ttl=lease_seconds
            )
        else:
            code = run_job(settings, display, until_exit=True)
    except InputError as exc:
        _json_problems(as_json, exc.total, exc.problems)
        for problem in exc.problems[:_SHOW_PROBLEMS]:
            click.echo(str(problem), err=True)
        hidden = exc.total - min(len(exc.problems), _SHOW_PROBLEMS)
        if hidden > 0:
            click.echo(f"... and {hidden} more (`bulkrt validate` lists them all)", err=True)
        click.echo(f"bulkrt run: {exc.total} problem(s) in the input; nothing was sent", err=True)
        raise SystemExit(ExitCode.BAD_INPUT) from None
    except RedisUnavailable as exc:
        click.echo(f"bulkrt run: cannot use --redis: {exc}; nothing was sent", err=True)
        raise SystemExit(ExitCode.REDIS_UNAVAILABLE) from None
    except LedgerError as exc:
        _json_problems(as_json, 1, [Problem(exc.path, None, "ledger", exc.message)])
        click.echo(f"bulkrt run: {exc}; nothing was sent", err=True)
        raise SystemExit(ExitCode.BAD_INPUT) from None
    raise SystemExit(code)


def _json_problems(as_json: bool, count: int, problems: Sequence[Problem]) -> None:
    """With ``--json``, print the input's problems on stdout as `bulkrt validate --json` does."""
    if as_json:
        click.echo(json.dumps(problems_document(count, problems), sort_keys=True))
