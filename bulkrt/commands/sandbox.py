"""`bulkrt sandbox`: serve the local X API sandbox until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
from pathlib import Path
from typing import Any

import click

from bulkrt.atomic import replacing
from bulkrt.commands.options import Seconds
from bulkrt.commands.outputs import SANDBOX_ACCOUNTS, SANDBOX_MARK, refusal
from bulkrt.exitcodes import ExitCode
from bulkrt.sandbox.config import (
    TRANSIENT_FAULTS,
    AlreadyRetweetedMode,
    BodyCheck,
    Endpoint,
    FaultKind,
    HiddenLimit,
    NotFoundMode,
    RateLimitBody,
    RateLimitHeaders,
    SandboxConfig,
    SuccessIdField,
    Tier,
    UndoNotFoundMode,
)
from bulkrt.sandbox.server import Sandbox

__all__ = ["command", "write_accounts_file"]


def _choice(enum: type[Any]) -> click.Choice[str]:
    return click.Choice([member.value for member in enum])


def _ids(values: tuple[str, ...]) -> frozenset[str]:
    return frozenset(part.strip() for value in values for part in value.split(",") if part.strip())


def _fault_rates(fault_rate: float, faults: tuple[str, ...]) -> dict[FaultKind, float]:
    rates = (
        {kind: fault_rate / len(TRANSIENT_FAULTS) for kind in TRANSIENT_FAULTS}
        if fault_rate
        else {}
    )
    for spec in faults:
        kind, sep, rate = spec.partition("=")
        try:
            rates[FaultKind(kind)] = float(rate) if sep else 0.0
        except ValueError:
            kinds = ", ".join(k.value for k in FaultKind)
            raise click.BadParameter(f"{spec!r}: use KIND=RATE with KIND one of {kinds}") from None
    return rates


def _hidden_caps(specs: tuple[str, ...]) -> tuple[HiddenLimit, ...]:
    caps = []
    shared = frozenset({Endpoint.RETWEET, Endpoint.POST_TWEET})
    for spec in specs:
        limit, _, rest = spec.partition("/")
        seconds, _, scope = rest.partition("/")
        try:
            if scope not in ("", "user", "app"):
                raise ValueError(scope)
            caps.append(HiddenLimit(int(limit), float(seconds), shared, per_app=scope == "app"))
        except ValueError:
            raise click.BadParameter(
                f"{spec!r}: use LIMIT/SECONDS[/user|app], e.g. 300/10800 (per user) or "
                "300/10800/app (per user and for the whole app)"
            ) from None
    return tuple(caps)


def write_accounts_file(path: Path, accounts: dict[str, Any]) -> None:
    """Write an accounts file readable only by its owner, atomically (temp file, fsync, rename),
    marked ``"written_by": "bulkrt sandbox"`` (`SANDBOX_MARK`, which the accounts loader
    ignores) so that a later ``--accounts-out --force`` may replace it and no other."""
    key, value = SANDBOX_MARK
    with replacing(path, mode=0o600) as out:
        json.dump({key: value, **accounts}, out, indent=2)
        out.write("\n")


async def _serve(sandbox: Sandbox, accounts_out: Path | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with sandbox:
        if accounts_out is not None:
            expires_at = sandbox.clock.now() + sandbox.config.token_ttl
            write_accounts_file(
                accounts_out, sandbox.state.world.accounts_file(expires_at=expires_at)
            )
        click.echo(f"bulkrt sandbox listening on {sandbox.url}")
        await stop.wait()


#: shown at the end of `--help`
_EXAMPLES = "\b\nExamples:\n" + "\n".join(
    [
        "  bulkrt sandbox --users 6 --limit 5 --window 3 --accounts-out accounts.json",
        "  bulkrt sandbox --port 0 --no-limits --rate-limit-headers static --fault-rate 0.1",
    ]
)


@click.command("sandbox", epilog=_EXAMPLES)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default)."
)
@click.option(
    "--port",
    default=8787,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to bind; 0 picks a free one.",
)
@click.option(
    "--users",
    default=3,
    show_default=True,
    type=click.IntRange(min=1),
    help="Users to create (odd: OAuth 1.0a, even: OAuth 2.0).",
)
@click.option(
    "--seed", default=0, show_default=True, help="Seed for credentials and random faults."
)
@click.option(
    "--accounts-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the users as an accounts file for `bulkrt run`.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace --accounts-out if it exists and a sandbox wrote it (it holds "
    '"written_by": "bulkrt sandbox"); an operator\'s accounts file, a job, a ledger or its '
    "journal is never replaced.",
)
@click.option(
    "--tier",
    type=_choice(Tier),
    default=Tier.PRO.value,
    show_default=True,
    help="Rate-limit preset.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help="Requests per window for retweet and undo (overrides the preset).",
)
@click.option(
    "--window",
    type=Seconds(min=0.001),
    help="Window length in seconds for retweet and undo.",
)
@click.option("--no-limits", is_flag=True, help="Serve without rate limits (for benchmarks).")
@click.option(
    "--user-day-limit",
    type=int,
    help="Cap writes per user per 24 hours (x-user-limit-24hour-* headers).",
)
@click.option(
    "--app-day-limit",
    type=int,
    help="Cap writes per app per 24 hours (x-app-limit-24hour-* headers).",
)
@click.option(
    "--hidden-cap",
    multiple=True,
    metavar="LIMIT/SECONDS",
    help="A cap on retweets and posts that no header shows, per user (/app: also per app).",
)
@click.option(
    "--already-retweeted", type=_choice(AlreadyRetweetedMode), default="error", show_default=True
)
@click.option("--not-found", type=_choice(NotFoundMode), default="errors-200", show_default=True)
@click.option("--undo-not-found", type=_choice(UndoNotFoundMode), default="noop", show_default=True)
@click.option(
    "--rate-limit-body", type=_choice(RateLimitBody), default="problem", show_default=True
)
@click.option(
    "--rate-limit-headers",
    type=_choice(RateLimitHeaders),
    default="normal",
    show_default=True,
    help="Headers on a 429.",
)
@click.option("--body-check", type=_choice(BodyCheck), default="strict", show_default=True)
@click.option("--success-id", type=_choice(SuccessIdField), default="none", show_default=True)
@click.option(
    "--id-mismatch-status", type=click.Choice(["400", "403"]), default="400", show_default=True
)
@click.option("--problem-host", default="api.twitter.com", show_default=True)
@click.option(
    "--timestamp-skew",
    default=300.0,
    show_default=True,
    type=Seconds(min=0),
    help="OAuth 1.0a timestamp window, seconds.",
)
@click.option(
    "--token-ttl",
    default=7200.0,
    show_default=True,
    type=Seconds(min=1),
    help="OAuth 2.0 access-token lifetime, seconds.",
)
@click.option(
    "--confidential-client", is_flag=True, help="The OAuth 2.0 client has a secret (Basic auth)."
)
@click.option(
    "--not-enrolled", is_flag=True, help="Answer 403 client-forbidden to every API request."
)
@click.option("--read-only-app", is_flag=True, help="The OAuth 1.0a app lacks write permission.")
@click.option(
    "--deleted",
    multiple=True,
    metavar="IDS",
    help="Tweet IDs that are deleted (comma-separated, repeatable).",
)
@click.option(
    "--protected", multiple=True, metavar="IDS", help="Tweet IDs from protected accounts."
)
@click.option(
    "--fault-rate",
    default=0.0,
    type=Seconds(0, 1),
    help="Rate of transient faults (5xx and resets), spread evenly.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="KIND=RATE",
    help="Rate of one fault kind (repeatable).",
)
@click.option(
    "--latency-ms",
    default=0.0,
    type=Seconds(min=0, max=600_000),
    help="Delay added to every API answer.",
)
@click.option(
    "--stall-seconds",
    default=30.0,
    show_default=True,
    type=Seconds(min=0, max=3600),
    help="How long a `stall` fault holds the answer.",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False),
    help="Serve HTTPS with this PEM certificate chain.",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False),
    help="The certificate's PEM private key.",
)
def command(**options: Any) -> None:
    """Serve a local, stateful emulator of the X API v2 retweet endpoints until SIGINT/SIGTERM.

    With --accounts-out it writes its users' credentials as an accounts file that
    `bulkrt run --api-base URL` accepts. Inspection endpoints live under /__sandbox/.
    """
    if bool(options["tls_cert"]) != bool(options["tls_key"]):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if options["accounts_out"] is not None:
        refused = refusal(
            options["accounts_out"], force=options["force"], inputs={}, writes=SANDBOX_ACCOUNTS
        )
        if refused is not None:
            raise click.UsageError(f"--accounts-out {options['accounts_out']} {refused}")
    config = SandboxConfig(
        users=options["users"],
        seed=options["seed"],
        tier=Tier(options["tier"]),
        limit=options["limit"],
        window=options["window"],
        unlimited=options["no_limits"],
        user_day_limit=options["user_day_limit"],
        app_day_limit=options["app_day_limit"],
        hidden_caps=_hidden_caps(options["hidden_cap"]),
        already_retweeted=AlreadyRetweetedMode(options["already_retweeted"]),
        not_found=NotFoundMode(options["not_found"]),
        undo_not_found=UndoNotFoundMode(options["undo_not_found"]),
        rate_limit_body=RateLimitBody(options["rate_limit_body"]),
        rate_limit_headers=RateLimitHeaders(options["rate_limit_headers"]),
        body_check=BodyCheck(options["body_check"]),
        success_id=SuccessIdField(options["success_id"]),
        id_mismatch_status=int(options["id_mismatch_status"]),
        problem_host=options["problem_host"],
        timestamp_skew=options["timestamp_skew"],
        token_ttl=options["token_ttl"],
        confidential_client=options["confidential_client"],
        enrolled=not options["not_enrolled"],
        oauth1_write=not options["read_only_app"],
        deleted_tweets=_ids(options["deleted"]),
        protected_tweets=_ids(options["protected"]),
        fault_rates=_fault_rates(options["fault_rate"], options["faults"]),
        latency_ms=options["latency_ms"],
        stall_seconds=options["stall_seconds"],
    )
    try:
        config.validate()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    context = None
    if options["tls_cert"]:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(options["tls_cert"], options["tls_key"])
    sandbox = Sandbox(config, host=options["host"], port=options["port"], ssl_context=context)
    try:
        asyncio.run(_serve(sandbox, options["accounts_out"]))
    except OSError as exc:
        click.echo(
            f"bulkrt sandbox: cannot serve on {options['host']}:{options['port']}: {exc}", err=True
        )
        raise SystemExit(ExitCode.BAD_INPUT) from None
