"""Waits an operator can see and trust: a reset implausibly far ahead is not obeyed, untrusted
headers teach no limit, and a long wait is told with its date, reason and account."""

from __future__ import annotations

import re
import signal

import anyio

from bulkrt.core.items import Action, Item, Status
from bulkrt.core.limit_evidence import learned_limit, teachable
from bulkrt.core.limiter import WindowLimiter
from bulkrt.core.outcome import Decision, classify
from bulkrt.core.ratelimits import RateLimitSnapshot, parse_rate_limits
from bulkrt.core.retry_policy import ParkPolicy
from bulkrt.core.scheduler import AccountEvent, AccountState, Dispatch, EventKind, Scheduler
from bulkrt.core.tiers import limit_model
from bulkrt.core.waits import LONG_WAIT, is_long, reason, when
from bulkrt.shell.progress import expected_finish
from tests.test_run import MakeWorld, eventually, fork_cli, rows

PROBLEM = "application/problem+json"
TOO_MANY = b'{"title":"Too Many Requests","type":"about:blank","status":429,"detail":"x"}'
NOW = 1_800_000_000.0
YEAR_2100 = 4_102_444_800


def _item(n: int) -> Item:
    return Item(f"acme-{n}", "camp", "acme", str(1000 + n), Action.RETWEET, "job.csv", n)


def _sent(scheduler: Scheduler, now: float) -> Dispatch:
    step = scheduler.next(now)
    assert isinstance(step, Dispatch), step
    return step


def test_a_429_reset_in_the_year_2100_parks_instead_of_waiting_for_it() -> None:
    """A spent window whose reset lies in 2100 parks the account for minutes, not 25 hours, and
    says why (a skew event naming the date, a park naming the 429)."""
    scheduler = Scheduler(
        limit_model("pro", limit=50, window=900),
        concurrency=4,
        park=ParkPolicy(base=60, maximum=600),
    )
    scheduler.add(_item(1), NOW)
    ticket = _sent(scheduler, NOW).ticket
    headers = {
        "x-rate-limit-limit": "50",
        "x-rate-limit-remaining": "0",
        "x-rate-limit-reset": str(YEAR_2100),
    }
    outcome = classify(Action.RETWEET, 429, headers, TOO_MANY, PROBLEM)
    assert outcome.decision is Decision.WAIT_RATE_LIMIT
    assert scheduler.on_response(ticket, NOW + 0.1, outcome) == []
    assert scheduler.state("acme", NOW + 1) is AccountState.PARKED
    resumes = scheduler.resumes_at("acme", NOW + 1)
    assert resumes is not None and resumes - NOW < 3600
    events = {e.kind: e for e in scheduler.drain_events()}
    assert "2100-01-01 00:00:00Z is implausibly far ahead" in events[EventKind.SKEW].detail
    parked = reason(events[EventKind.PARKED])
    assert parked.startswith("a 429 its headers do not explain; parked: park 1 (a hidden limit")
    assert parked.count("its headers do not explain") == 1  # said once, not again in the detail


def test_a_plausible_429_reset_is_waited_for() -> None:
    """A spent window resetting in ten minutes is waited for, as the API says."""
    scheduler = Scheduler(limit_model("pro", limit=50, window=900), concurrency=4)
    scheduler.add(_item(1), NOW)
    ticket = _sent(scheduler, NOW).ticket
    headers = {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(int(NOW + 600))}
    scheduler.on_response(ticket, NOW, classify(Action.RETWEET, 429, headers, TOO_MANY, PROBLEM))
    resumes = scheduler.resumes_at("acme", NOW + 1)
    assert resumes is not None and NOW + 600 <= resumes <= NOW + 605
    assert [e.kind for e in scheduler.drain_events()] == [EventKind.RATE_LIMITED]


STATIC = {"x-rate-limit-limit": "15", "x-rate-limit-remaining": "14", "x-rate-limit-reset": "1"}
#: what an answer whose headers teach no limit yields
NOTHING = RateLimitSnapshot()


def test_headers_of_5xx_and_non_api_answers_teach_nothing() -> None:
    """A 500, a 503, an HTML page, an unreadable 200 and a 401 carry headers that teach no
    limit; a success and a spent 429 with a problem body do."""
    untrusted = [
        (500, b'{"title":"Internal Server Error","type":"about:blank"}', PROBLEM),
        (503, b"", None),
        (403, b"<html>no</html>", "text/html"),
        (200, b"garbage", "application/json"),
        (401, b'{"title":"Unauthorized","type":"about:blank"}', PROBLEM),
        (429, TOO_MANY, PROBLEM),  # remaining 14: headers contradict the 429
    ]
    for http, body, ctype in untrusted:
        assert teachable(classify(Action.RETWEET, http, STATIC, body, ctype)) == NOTHING, http
    ok = classify(Action.RETWEET, 200, STATIC, b'{"data":{"retweeted":true}}', "application/json")
    assert ok.status is Status.OK and teachable(ok) != NOTHING
    spent = {**STATIC, "x-rate-limit-remaining": "0"}
    assert teachable(classify(Action.RETWEET, 429, spent, TOO_MANY, PROBLEM)) != NOTHING


def test_a_learned_limit_never_falls_below_a_tenth_of_the_model() -> None:
    """However low a trusted header's limit, the window keeps a tenth of the model's."""
    for model in (1, 5, 50, 300, 100_000):
        for reported in (1, 15, model, 10 * model):
            learned = learned_limit(model, reported)
            assert learned >= max(1, model // 10)
            assert learned == max(reported, max(1, model // 10))


def test_a_long_wait_is_a_warning_with_its_date_and_reason() -> None:
    """A wait longer than LONG_WAIT is long; it is told with the date when not today, and why."""
    long = AccountEvent(EventKind.RATE_LIMITED, "acme", NOW, NOW + LONG_WAIT + 1)
    short = AccountEvent(EventKind.RATE_LIMITED, "acme", NOW, NOW + 30)
    assert is_long(long) and not is_long(short)
    assert when(NOW + 2 * 86_400, NOW).count("-") == 2
    assert ":" in when(NOW + 1, NOW) and "-" not in when(NOW + 1, NOW)
    parked = AccountEvent(EventKind.PARKED, "acme", NOW, NOW + 60, "park 1: HTTP 429")
    assert reason(parked) == "a 429 its headers do not explain; parked: park 1: HTTP 429"


def test_the_expected_finish_is_never_in_the_past_nor_before_a_parked_account_resumes() -> None:
    """While items are left the expected finish is not before now, nor before the last
    waiting account may send again."""
    for now in (0.0, 50.0, 500.0):
        for resumes in ([], [now + 900.0]):
            finish = expected_finish(
                100.0, now, left=3, to_send=10, expected=100.0, resumes=resumes
            )
            assert finish >= now and all(finish >= r for r in resumes)


async def test_a_run_that_must_wait_long_says_so_at_warning(make_world: MakeWorld) -> None:
    """With 2 requests per 400 s, the third item waits minutes: without a terminal and without
    -v, stderr carries a WARNING with the date it waits until and why; SIGINT then stops it."""
    world = await make_world(limit=2, window=400.0)
    job = world.job(rows(["acct001"], 3))
    async with fork_cli(world.run_args(job)) as process:
        await eventually(lambda: "run_waiting" in process.stderr().decode())
        seen = process.stderr().decode()
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(30):
            await process.wait()
    line = next(line for line in seen.splitlines() if "run_waiting" in line)
    assert "warning" in line
    assert re.search(r"until=\S*\d{4}-\d\d-\d\dT", line), line
    assert "spent its rate-limit window" in line
    assert "--limit 2 per --window 400 s" in line  # the model it waits by, not a 429
    assert process.returncode == 130
    assert len(world.lines()) == 2


def test_the_expected_finish_follows_a_limit_learned_lower_than_the_model() -> None:
    """Headers that teach a limit half the model's make the limiter report twice the pace,
    and the expected finish moves out by that factor."""
    limiter = WindowLimiter(limit_model("pro", limit=50, window=900))
    permit = limiter.acquire("acme", Action.RETWEET, NOW)
    assert limiter.slowdown() == 1.0
    limiter.settle(permit, NOW + 0.1, parse_rate_limits(
        {"x-rate-limit-limit": "25", "x-rate-limit-remaining": "24",
         "x-rate-limit-reset": str(int(NOW + 900))}
    ))  # fmt: skip
    assert limiter.slowdown() == 2.0
    plain = expected_finish(0.0, NOW, left=10, to_send=10, expected=100.0, resumes=[])
    slowed = expected_finish(
        0.0, NOW, left=10, to_send=10, expected=100.0, resumes=[], slowdown=limiter.slowdown()
    )
    assert (plain - NOW, slowed - NOW) == (100.0, 200.0)
