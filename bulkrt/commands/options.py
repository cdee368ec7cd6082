"""Options that several commands share, so they read and behave the same everywhere."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from bulkrt.core.api_base import api_base as checked_api_base
from bulkrt.core.tiers import Tier
from bulkrt.errors import Problem
from bulkrt.jobs.job_files import JobFormat
from bulkrt.redaction import masked_url

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "JSON_PROBLEMS",
    "REDIS_PREFIX",
    "Seconds",
    "accounts_option",
    "api_base_option",
    "campaign_option",
    "checked_api_base_option",
    "format_option",
    "grace_option",
    "insecure_http_option",
    "jobs_argument",
    "lease_option",
    "limit_options",
    "problems_document",
    "redis_option",
    "redis_url_callback",
    "sending_options",
    "timeout_options",
]


class Seconds(click.FloatRange):
    """A finite number in a range: ``nan`` and ``inf`` are refused (exit 2, naming the option),
    as a plain `click.FloatRange` would accept them.

    >>> Seconds(min=0, min_open=True).convert("nan", None, None)
    Traceback (most recent call last):
    ...
    click.exceptions.BadParameter: 'nan' is not a finite number.
    """

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


#: ``JOB...``: one or more job files, ``-`` for standard input
jobs_argument = click.argument("jobs", nargs=-1, required=True, metavar="JOB...")

#: ``--accounts FILE``, passed as ``accounts_path``
accounts_option = click.option(
    "--accounts",
    "accounts_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The accounts file (JSON) naming every account of the jobs.",
)

#: ``--format csv|jsonl``, passed as ``fmt``
format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice([f.value for f in JobFormat]),
    help="Format of the job files (default: from the name; required for '-').",
)

#: ``--campaign NAME``
campaign_option = click.option(
    "--campaign", help="Campaign of rows that name none (default: the job file's name)."
)


#: problems listed in ``--json`` output (all are counted, and all printed on stderr)
JSON_PROBLEMS = 1000


def problems_document(count: int, problems: Sequence[Problem]) -> dict[str, object]:
    """What ``--json`` prints when the input has problems (`validate`, `run`): ``ok`` false,
    their ``count``, and the first `JSON_PROBLEMS` of them (file, line, field, message)."""
    return {
        "ok": False,
        "problems": count,
        "first": [asdict(p) for p in problems[:JSON_PROBLEMS]],
    }


#: where every key of the multi-machine mode lives in Redis
REDIS_PREFIX = "bulkrt:"


def redis_url_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--redis``: a redis:// or rediss:// URL, shown with its credentials masked if not."""
    if value is not None and not value.startswith(("redis://", "rediss://")):
        raise click.BadParameter(f"{masked_url(value)!r} is not a redis:// or rediss:// URL")
    return value


redis_option = click.option(
    "--redis",
    "redis_url",
    envvar="BULKRT_REDIS",
    callback=redis_url_callback,
    help="Multi-machine mode: share the job, every account's budget and credentials with the "
    "workers on this Redis (redis:// or rediss://, env BULKRT_REDIS).",
)
lease_option = click.option(
    "--lease-seconds",
    default=15.0,
    show_default=True,
    type=Seconds(min=1, max=600),
    help="Multi-machine mode: how long an account stays with a worker that stopped answering "
    "before another takes it over.",
)


def checked_api_base_option(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """``--api-base``: checked by `bulkrt.core.api_base`; a bad one exits 2 naming where it
    came from."""
    try:
        return checked_api_base(
            value, allow_insecure_http=bool(ctx.params.get("allow_insecure_http"))
        )
    except ValueError as exc:
        source = ctx.get_parameter_source(param.name or "")
        where = " (from BULKRT_API_BASE)" if source is ParameterSource.ENVIRONMENT else ""
        raise click.BadParameter(f"{exc}{where}") from None


insecure_http_option = click.option(
    "--allow-insecure-http",
    is_flag=True,
    is_eager=True,
    help="Accept a plain http:// --api-base on another machine (credentials travel unencrypted).",
)
api_base_option = click.option(
    "--api-base",
    envvar="BULKRT_API_BASE",
    default="https://api.x.com",
    show_default=True,
    callback=checked_api_base_option,
    help="Where requests go (env BULKRT_API_BASE), e.g. a sandbox's URL: scheme and host, "
    "without the API's /2 (http only to this machine).",
)


def _together(*options: Callable[[F], F]) -> Callable[[F], F]:
    """Several options as one decorator, in the order given."""

    def apply(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


#: ``--tier``, ``--limit``, ``--window``: the rate-limit model of `bulkrt run` and `bulkrt worker`
limit_options = _together(
    click.option(
        "--tier",
        type=click.Choice([t.value for t in Tier]),
        default="pro",
        show_default=True,
        help="Rate-limit preset used until response headers say otherwise.",
    ),
    click.option(
        "--limit",
        type=click.IntRange(min=1),
        help="Requests per window per user and endpoint (overrides the tier).",
    ),
    click.option(
        "--window",
        type=Seconds(min=0.001),
        help="Window length in seconds (overrides the tier).",
    ),
)


#: ``--concurrency``, ``--max-attempts``
sending_options = _together(
    click.option(
        "--concurrency",
        default=32,
        show_default=True,
        type=click.IntRange(min=1),
        help="Most requests in flight at once, across all accounts.",
    ),
    click.option(
        "--max-attempts",
        default=5,
        show_default=True,
        type=click.IntRange(min=1),
        help="Attempts per item for transient failures (5xx, network, timeouts).",
    ),
)


#: ``--connect-timeout``, ``--read-timeout``
timeout_options = _together(
    click.option(
        "--connect-timeout",
        default=10.0,
        show_default=True,
        type=Seconds(min=0, min_open=True, max=600),
        help="Seconds to wait for a connection.",
    ),
    click.option(
        "--read-timeout",
        default=30.0,
        show_default=True,
        type=Seconds(min=0, min_open=True, max=600),
        help="Seconds to wait for an answer.",
    ),
)


#: ``--grace``
grace_option = _together(
    click.option(
        "--grace",
        default=20.0,
        show_default=True,
        type=Seconds(min=0, max=600),
        help="Seconds requests in flight get to finish after SIGINT/SIGTERM.",
    ),
)
