"""`bulkrt worker`: add a worker to the runs that share a Redis (the multi-machine mode), on any
machine, until SIGINT/SIGTERM.

It takes accounts with queued items (its fair share), runs their items inside every account's
shared rate-limit budget, and hands the results to Redis, from which each job's driving
``bulkrt run --redis`` writes its ledger. Each job's items run under the limits its driver was
given (``--tier``, ``--limit``, ``--window``, published with the job), unless the worker is given
its own: then those apply to every job, and a job published with others is warned about once,
naming both. A first SIGINT/SIGTERM stops it cleanly: requests in flight finish (within
``--grace``), their results are handed over, its accounts are released, and their other items
stay queued for the other workers (exit 130/143). A second one stops it at once.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from pathlib import Path

import anyio
import click
from anyio.abc import TaskStatus
from click.core import ParameterSource

from bulkrt import logs
from bulkrt.commands.options import (
    REDIS_PREFIX,
    Seconds,
    accounts_option,
    api_base_option,
    grace_option,
    insecure_http_option,
    lease_option,
    limit_options,
    redis_url_callback,
    sending_options,
    timeout_options,
)
from bulkrt.core.retry_policy import RetryPolicy, park_policy_for
from bulkrt.core.tiers import Tier, limit_model
from bulkrt.errors import InputError, RedisUnavailable
from bulkrt.exitcodes import ExitCode
from bulkrt.shell.accounts import load_accounts
from bulkrt.shell.accounts_file import recover_write_back
from bulkrt.shell.client import Timeouts

__all__ = ["command"]

_EXAMPLES = "\b\nExamples:\n" + "\n".join(
    [
        "  bulkrt worker --redis redis://queue.internal:6379/0 --accounts accounts.json",
        "  BULKRT_REDIS=rediss://:secret@queue.internal:6380/0 bulkrt worker --accounts a.json",
    ]
)


def _required_redis(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    if value is None:
        raise click.BadParameter("a worker needs the Redis its runs share (or BULKRT_REDIS)")
    checked = redis_url_callback(ctx, param, value)
    assert checked is not None
    return checked


def _given(ctx: click.Context, *names: str) -> bool:
    """Whether the operator gave any of the options ``names`` (not their defaults)."""
    defaults = (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP, None)
    return any(ctx.get_parameter_source(name) not in defaults for name in names)


@click.command("worker", epilog=_EXAMPLES)
@click.option(
    "--redis",
    "redis_url",
    envvar="BULKRT_REDIS",
    callback=_required_redis,
    help="The Redis the runs share (redis:// or rediss://, env BULKRT_REDIS).",
)
@accounts_option
@insecure_http_option
@api_base_option
@limit_options
@sending_options
@click.option("--max-rps", type=Seconds(min=0.01), help="A cap on this worker's requests/s.")
@timeout_options
@grace_option
@lease_option
@click.option("--log-json", is_flag=True, help="Log JSON lines on stderr.")
@click.option("-v", "--verbose", is_flag=True, help="Log every state change.")
def command(
    redis_url: str,
    accounts_path: Path,
    allow_insecure_http: bool,
    api_base: str,
    tier: str,
    limit: int | None,
    window: float | None,
    concurrency: int,
    max_attempts: int,
    max_rps: float | None,
    connect_timeout: float,
    read_timeout: float,
    grace: float,
    lease_seconds: float,
    log_json: bool,
    verbose: bool,
) -> None:
    """Work on the jobs published on a Redis, until SIGINT/SIGTERM."""
    logs.configure(json=log_json, level=logging.INFO if verbose else logging.WARNING)
    # Loaded here: the command's --help needs neither redis-py nor the engine.
    from bulkrt.fleet.engine import FleetWorker, WorkerSettings

    recover_write_back(accounts_path)
    try:
        accounts = load_accounts(accounts_path)
    except InputError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise SystemExit(ExitCode.BAD_INPUT) from None
    model = limit_model(Tier(tier), limit=limit, window=window)
    settings = WorkerSettings(
        model=model,
        api_base=api_base,
        concurrency=concurrency,
        retry=RetryPolicy(max_attempts=max_attempts),
        timeouts=Timeouts(
            connect=connect_timeout, read=read_timeout, total=connect_timeout + 2 * read_timeout
        ),
        grace=grace,
        max_rps=max_rps,
        lease_ttl=lease_seconds,
        prefix=REDIS_PREFIX,
        park=park_policy_for(window),
        explicit_limits=_given(click.get_current_context(), "tier", "limit", "window"),
    )

    async def work() -> signal.Signals | None:
        from bulkrt.fleet.connection import connect

        redis = await connect(redis_url)
        worker = FleetWorker(
            redis,
            accounts,
            settings,
            info={"host": socket.gethostname(), "pid": str(os.getpid()), "role": "worker"},
        )
        stopped: list[signal.Signals] = []

        async def watch(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                task_status.started()  # from here a signal stops the worker cleanly
                async for signum in signals:
                    if stopped:
                        worker.abandon()
                        continue
                    stopped.append(signum)
                    click.echo(f"bulkrt worker: stopping ({signum.name}); finishing requests in "
                               f"flight (up to {grace:g} s)", err=True)  # fmt: skip
                    worker.stop()

        try:
            async with anyio.create_task_group() as tasks:
                await tasks.start(watch)  # started, not only scheduled (as in the runner)
                click.echo(f"bulkrt worker {worker.name} started", err=True)
                await worker.run()
                if not worker.abandoned:
                    await worker.bring_accounts_file_up_to_date(sorted(worker.served))
                tasks.cancel_scope.cancel()
        finally:
            await redis.aclose()
        click.echo(
            f"bulkrt worker {worker.name} stopped: {worker.finished} item(s) finished, "
            f"{worker.requests} request(s) sent",
            err=True,
        )
        return stopped[0] if stopped else None

    try:
        stopped = anyio.run(work, backend="asyncio")
    except RedisUnavailable as exc:
        click.echo(f"bulkrt worker: cannot use --redis: {exc}", err=True)
        raise SystemExit(ExitCode.REDIS_UNAVAILABLE) from None
    if stopped is None:
        raise SystemExit(ExitCode.OK)
    raise SystemExit(ExitCode.INTERRUPTED if stopped is signal.SIGINT else ExitCode.TERMINATED)
