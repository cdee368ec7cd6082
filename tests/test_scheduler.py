"""The scheduler and its windows, driven by a fake clock and a pure fixed-window server model."""

from __future__ import annotations

import heapq
import json
import math
import os
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pytest

from bulkrt.core.items import Action, Item, Status
from bulkrt.core.limiter import USER_DAY, BudgetWindow, Margins, WindowLimiter
from bulkrt.core.outcome import Decision, FailureKind, Outcome, TransportFailure, classify
from bulkrt.core.ratelimits import LimitReading, RateLimitSnapshot
from bulkrt.core.retry_policy import ParkPolicy, RetryPolicy
from bulkrt.core.scheduler import (
    AccountState,
    Dispatch,
    Done,
    EventKind,
    Idle,
    ItemResult,
    Overview,
    Refresh,
    Scheduler,
    Step,
    Ticket,
    Wait,
)
from bulkrt.core.tiers import limit_model
from bulkrt.core.work import AccountQueues

PROBLEM = "application/problem+json"
OK_BODY = {
    Action.RETWEET: b'{"data":{"retweeted":true}}',
    Action.UNDO: b'{"data":{"retweeted":false}}',
}
TOO_MANY = (
    b'{"title":"Too Many Requests","type":"about:blank","status":429,"detail":"Too Many Requests"}'
)
UNAUTHORIZED = b'{"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"}'
UNAVAILABLE = b'{"title":"Service Unavailable","type":"about:blank","status":503,"detail":"x"}'


def item(account: str, n: int, action: Action = Action.RETWEET, tweet: str | None = None) -> Item:
    """An item of ``account``; its Tweet defaults to one per row."""
    return Item(f"{account}-{n}", "camp", account, tweet or str(1000 + n), action, "job.csv", n)


def ok(action: Action = Action.RETWEET, **limits: LimitReading) -> Outcome:
    """A success outcome carrying the given rate-limit readings."""
    return Outcome(
        Decision.DONE,
        status=Status.OK,
        retweeted=action is Action.RETWEET,
        http=200,
        limits=RateLimitSnapshot(**limits),  # type: ignore[arg-type]  # readings only
    )


def no_retry_jitter(max_attempts: int = 3) -> RetryPolicy:
    """A retry policy with 1, 2, 4 ... second delays and no jitter."""
    return RetryPolicy(max_attempts=max_attempts, initial=1.0, maximum=30.0, jitter=0.0)


# -- a pure fixed-window server, and a loop that drives the scheduler against it ------------


@dataclass
class FixedWindowServer:
    """X's per-user, per-endpoint fixed windows that start at the first request (api.md §4.1)."""

    limit: int
    period: float
    #: account -> (from, to): answer 429 with remaining > 0 in that span of server time
    hidden: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: accounts whose credentials are refused
    unauthorized: set[str] = field(default_factory=set)
    windows: dict[tuple[str, Action], tuple[float, int]] = field(default_factory=dict)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)

    def handle(self, it: Item, at: float) -> tuple[int, dict[str, str], bytes]:
        """Answer a request of ``it`` that arrives at ``at``."""
        key = (it.account, it.action)
        start, used = self.windows.get(key, (at, 0))
        if at >= start + self.period:
            start, used = at, 0
        reset = math.ceil(start + self.period)  # as the sandbox: whole seconds, rounded up

        def headers(remaining: int) -> dict[str, str]:
            return {
                "x-rate-limit-limit": str(self.limit),
                "x-rate-limit-remaining": str(remaining),
                "x-rate-limit-reset": str(reset),
            }

        span = self.hidden.get(it.account)
        if it.account in self.unauthorized:
            status, head, body = 401, headers(self.limit - used), UNAUTHORIZED
        elif span is not None and span[0] <= at < span[1]:
            status, head, body = 429, headers(self.limit - used), TOO_MANY
        elif used >= self.limit:
            status, head, body = 429, headers(0), TOO_MANY
        else:
            used += 1
            status, head, body = 200, headers(self.limit - used), OK_BODY[it.action]
        self.windows[key] = (start, used)
        self.statuses[(it.account, status)] += 1
        return status, head, body


@dataclass
class Run:
    """What a simulated run did."""

    results: list[ItemResult]
    sends: list[tuple[float, Item]]
    end: float

    def last_send(self, account: str) -> float:
        """When ``account``'s last request went out."""
        return max(t for t, it in self.sends if it.account == account)


Reply = tuple[int, dict[str, str], bytes]


def drive(
    scheduler: Scheduler,
    server: FixedWindowServer,
    *,
    latency: Callable[[], float] = lambda: 0.001,
    refresh_ok: bool = True,
    start: float = 0.0,
    fault: Callable[[Item], Reply | None] = lambda it: None,
) -> Run:
    """Run the scheduler against ``server`` on a fake clock until it says Done.

    Each request reaches the server after one ``latency()`` draw and its answer comes back
    after another, so answers may overtake each other; the server handles requests in the
    order they reach it. ``fault`` may replace the server's answer (it still counts).
    """
    now = start
    # (time, seq, ticket, reply): reply None means "reaches the server", else "answer arrives"
    events: list[tuple[float, int, Ticket, Reply | None]] = []
    sends: list[tuple[float, Item]] = []
    results: list[ItemResult] = []
    seq = 0

    def advance(until: float) -> None:
        nonlocal seq
        while events and events[0][0] <= until:
            at, _, ticket, reply = heapq.heappop(events)
            if reply is None:
                answer = server.handle(ticket.item, at)
                seq += 1
                heapq.heappush(events, (at + latency(), seq, ticket, fault(ticket.item) or answer))
            else:
                status, headers, body = reply
                outcome = classify(ticket.item.action, status, headers, body, PROBLEM)
                results.extend(scheduler.on_response(ticket, at, outcome))

    for _ in range(200_000):
        step: Step = scheduler.next(now)
        if isinstance(step, Done):
            assert not events
            return Run(results, sends, now)
        if isinstance(step, Dispatch):
            sends.append((now, step.ticket.item))
            seq += 1
            heapq.heappush(events, (now + latency(), seq, step.ticket, None))
        elif isinstance(step, Refresh):
            results.extend(scheduler.on_refreshed(step.account, now, refresh_ok))
        elif isinstance(step, Wait):
            assert step.until > now or events, "Wait must lie in the future"
            now = min(step.until, events[0][0]) if events else step.until
            advance(now)
        else:
            assert events, "Idle with nothing in flight would hang the shell"
            now = events[0][0]
            advance(now)
    raise AssertionError("the run did not finish")


ACCOUNTS = [f"u{n:02}" for n in range(20)]
TICK = 0.1


def warm(scheduler: Scheduler, *accounts: str, now: float = 0.0) -> None:
    """Send and answer one item of each account: a new account sends one request at a time
    until its first answer (slow start), so tests of later behaviour begin after it."""
    for _ in accounts:
        step = scheduler.next(now)
        assert isinstance(step, Dispatch)
        assert scheduler.on_response(step.ticket, now, ok())[0].status is Status.OK


def short_windows(**kwargs: object) -> Scheduler:
    """A scheduler for 5 requests per 3-second window, concurrency 16."""
    margins = Margins(skew=0.0)
    return Scheduler(
        limit_model("basic", limit=5, window=3),
        concurrency=16,
        retry=no_retry_jitter(),
        margins=margins,
        **kwargs,  # type: ignore[arg-type]
    )


def load(scheduler: Scheduler, accounts: list[str], n: int) -> None:
    """Queue ``n`` retweets for each account, in row order."""
    for account in accounts:
        for i in range(n):
            assert scheduler.add(item(account, i)) == []


class TestSimulation:
    """Whole runs against the fixed-window server model."""

    def test_makespan_is_the_theoretical_minimum_with_no_429(self) -> None:
        """20 accounts x 60 items at 5 per 3 s: every account's last request goes at the start
        of window 12 (33 s, within a tick) and the server never answers 429."""
        scheduler = short_windows()
        server = FixedWindowServer(limit=5, period=3.0)
        load(scheduler, ACCOUNTS, 60)
        run = drive(scheduler, server)
        assert sum(n for (_, status), n in server.statuses.items() if status == 429) == 0
        assert len(run.results) == 1200
        assert all(r.status is Status.OK and r.attempts == 1 for r in run.results)
        for account in ACCOUNTS:
            assert 33.0 <= run.last_send(account) <= 33.0 + TICK

    def test_file_order_is_kept_per_account(self) -> None:
        """Each account's requests go out in the order of its rows."""
        scheduler = short_windows()
        load(scheduler, ACCOUNTS[:3], 12)
        run = drive(scheduler, FixedWindowServer(limit=5, period=3.0))
        for account in ACCOUNTS[:3]:
            lines = [it.line for _, it in run.sends if it.account == account]
            assert lines == sorted(lines) == list(range(12))

    def test_hidden_limit_parks_only_that_account(self) -> None:
        """A 429 with remaining > 0 parks its account with a growing backoff; the others finish
        on schedule with no 429, and the parked account still finishes every item."""
        park = ParkPolicy(base=5.0, maximum=40.0, jitter=0.0)
        scheduler = short_windows(park=park)
        server = FixedWindowServer(limit=5, period=3.0, hidden={"u00": (6.0, 20.0)})
        load(scheduler, ACCOUNTS, 60)
        run = drive(scheduler, server)
        assert all(r.status is Status.OK for r in run.results) and len(run.results) == 1200
        for account in ACCOUNTS[1:]:
            assert server.statuses[(account, 429)] == 0
            assert run.last_send(account) <= 33.0 + TICK
        resent = [r for r in run.results if r.item.account == "u00" and r.attempts > 1]
        assert resent, "the refused items were resent"
        # one burst meets the limit; after that each park ends with a single probe:
        # parks of 5 and 10 s reach past the hidden span (6 to 20 s)
        parks = [e for e in scheduler.drain_events() if e.kind is EventKind.PARKED]
        assert [round((e.until or 0.0) - e.at) for e in parks] == [5, 10]
        assert server.statuses[("u00", 429)] <= 5 + 1
        assert run.last_send("u00") > 33.0 + TICK

    def test_auth_failure_pauses_only_that_account(self) -> None:
        """A 401 after one refresh ends all of that account's items as error without sending
        them; the other accounts finish on schedule."""
        scheduler = short_windows()
        server = FixedWindowServer(limit=5, period=3.0, unauthorized={"u03"})
        load(scheduler, ACCOUNTS, 60)
        run = drive(scheduler, server)
        mine = [r for r in run.results if r.item.account == "u03"]
        assert len(mine) == 60 and all(r.status is Status.ERROR for r in mine)
        assert all(r.error is not None and r.error.type == "unauthorized" for r in mine)
        assert server.statuses[("u03", 401)] <= 5 + 1
        assert sum(1 for _, it in run.sends if it.account == "u03") <= 6
        others = [r for r in run.results if r.item.account != "u03"]
        assert len(others) == 1140 and all(r.status is Status.OK for r in others)
        assert max(run.last_send(a) for a in ACCOUNTS if a != "u03") <= 33.0 + TICK

    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_no_429_with_jittery_latency_and_faults(self, seed: int) -> None:
        """With latencies of 1-200 ms each way (answers overtaking each other) and 10 % of
        answers replaced by 503s, no request meets a spent window, every item ends ok, and
        each account's rows are first sent in file order."""
        rng = random.Random(seed)
        retry = RetryPolicy(max_attempts=8, initial=0.2, maximum=2.0, rng=random.Random(seed))
        scheduler = Scheduler(
            limit_model("basic", limit=5, window=3),
            concurrency=6,
            retry=retry,
            margins=Margins(skew=0.0),
        )
        for account in ACCOUNTS[:8]:
            for i in range(40):
                action = Action.UNDO if i % 4 == 3 else Action.RETWEET
                scheduler.add(item(account, i, action, tweet=str(1000 + i - i % 4)))

        def fault(it: Item) -> Reply | None:
            return (503, {}, UNAVAILABLE) if rng.random() < 0.1 else None

        server = FixedWindowServer(limit=5, period=3.0)
        run = drive(scheduler, server, latency=lambda: rng.uniform(0.001, 0.2), fault=fault)
        assert sum(n for (_, status), n in server.statuses.items() if status == 429) == 0
        assert len(run.results) == 320 and all(r.status is Status.OK for r in run.results)
        for account in ACCOUNTS[:8]:
            firsts: dict[int, float] = {}
            for t, it in run.sends:
                if it.account == account:
                    firsts.setdefault(it.line, t)
            assert sorted(firsts, key=lambda line: (firsts[line], line)) == list(range(40))

    def test_model_longer_than_server_is_corrected_by_the_limit_header(self) -> None:
        """With ``--tier free`` (1 per window) against a server of 5, the limit header raises
        the model's limit without causing a 429."""
        scheduler = Scheduler(
            limit_model("free", window=3), concurrency=4, margins=Margins(skew=0.0)
        )
        server = FixedWindowServer(limit=5, period=3.0)
        load(scheduler, ["a"], 20)
        run = drive(scheduler, server)
        assert server.statuses[("a", 429)] == 0
        assert run.last_send("a") < 3 * 20 / 2  # far faster than 1 per 3 s

    def test_server_window_longer_than_model_waits_for_the_reset(self) -> None:
        """A ``--window`` shorter than the server's costs at most one 429 per window: the
        exhausted header blocks the endpoint until the reset."""
        scheduler = Scheduler(
            limit_model("basic", limit=5, window=3), concurrency=4, margins=Margins(skew=0.0)
        )
        server = FixedWindowServer(limit=5, period=10.0)
        load(scheduler, ["a"], 20)
        run = drive(scheduler, server)
        assert server.statuses[("a", 429)] == 0
        assert all(r.status is Status.OK for r in run.results)
        assert run.last_send("a") >= 30.0


class TestDecisions:
    """Single decisions of the scheduler."""

    def test_round_robin_between_ready_accounts(self) -> None:
        """Two accounts with room are served alternately."""
        scheduler = short_windows()
        load(scheduler, ["a", "b"], 4)
        warm(scheduler, "a", "b")
        order = []
        for _ in range(4):
            step = scheduler.next(0.0)
            assert isinstance(step, Dispatch)
            order.append(step.ticket.item.account)
        assert order == ["a", "b", "a", "b"]

    def test_a_new_account_sends_one_request_until_its_first_answer(self) -> None:
        """Slow start: a new account's second request waits for the first answer, so refused
        credentials or an unknown limit cost one request, not a burst; then it opens up."""
        scheduler = Scheduler(limit_model("pro"), concurrency=8)
        load(scheduler, ["a"], 4)
        first = scheduler.next(0.0)
        assert isinstance(first, Dispatch)
        assert isinstance(scheduler.next(0.0), Idle)
        scheduler.on_response(first.ticket, 0.1, ok())
        burst = [scheduler.next(0.1) for _ in range(3)]
        assert all(isinstance(step, Dispatch) for step in burst)

    def test_concurrency_cap_answers_idle(self) -> None:
        """With ``concurrency`` requests in flight nothing more goes out."""
        scheduler = Scheduler(limit_model("pro"), concurrency=2)
        load(scheduler, ["a", "b", "c"], 2)
        assert isinstance(scheduler.next(0.0), Dispatch)
        assert isinstance(scheduler.next(0.0), Dispatch)
        assert isinstance(scheduler.next(0.0), Idle)

    def test_same_tweet_is_never_in_flight_twice(self) -> None:
        """An undo waits for the retweet of the same Tweet to come back."""
        scheduler = Scheduler(limit_model("pro"), concurrency=8)
        scheduler.add(item("a", 0, Action.RETWEET, tweet="7"))
        scheduler.add(item("a", 1, Action.UNDO, tweet="7"))
        first = scheduler.next(0.0)
        assert isinstance(first, Dispatch)
        assert isinstance(scheduler.next(0.0), Idle)
        scheduler.on_response(first.ticket, 0.1, ok())
        second = scheduler.next(0.1)
        assert isinstance(second, Dispatch) and second.ticket.item.action is Action.UNDO

    def test_retry_waits_its_backoff_and_holds_back_the_account(self) -> None:
        """A 503 is resent after the backoff; the account's next row waits behind it, while
        another account uses the free slot."""
        scheduler = Scheduler(limit_model("pro"), concurrency=1, retry=no_retry_jitter())
        load(scheduler, ["a"], 2)
        load(scheduler, ["b"], 1)
        first = scheduler.next(0.0)
        assert isinstance(first, Dispatch) and first.ticket.item.key == "a-0"
        failed = classify(Action.RETWEET, 503, {}, UNAVAILABLE, PROBLEM)
        assert scheduler.on_response(first.ticket, 0.1, failed) == []
        other = scheduler.next(0.1)
        assert isinstance(other, Dispatch) and other.ticket.item.account == "b"
        scheduler.on_response(other.ticket, 0.2, ok())
        assert scheduler.next(0.2) == Wait(1.1)
        again = scheduler.next(1.1)
        assert isinstance(again, Dispatch) and again.ticket.item.key == "a-0"
        assert again.ticket.tries == 1 and again.ticket.sent == 2

    @pytest.mark.parametrize(
        ("first", "preexisting"),
        [
            ("none", True),
            ("reset after sending", None),
            ("503", None),
            ("connection refused", True),
            ("hidden 429", True),
        ],
    )
    def test_already_retweeted_is_attributed_by_the_evidence_of_earlier_attempts(
        self, first: str, preexisting: bool | None
    ) -> None:
        """ "Already retweeted" is the owner's when every earlier attempt is proved to have had
        no effect (none, a refused connection, a 429), and of undecidable origin (None) after an
        attempt that may have been applied (a reset after sending, a 5xx)."""
        refused = TransportFailure(FailureKind.NETWORK, "refused", unsent=True)
        earlier = {
            "none": None,
            "reset after sending": classify(Action.RETWEET, None, {}, b"", None),
            "503": classify(Action.RETWEET, 503, {}, b"{}", PROBLEM),
            "connection refused": classify(Action.RETWEET, None, {}, b"", None, refused),
            "hidden 429": classify(Action.RETWEET, 429, {}, b"{}", PROBLEM),
        }[first]
        already = (
            b'{"errors":[{"message":"You cannot retweet a Tweet that you have already '
            b'retweeted."}],"title":"Invalid Request","type":"about:blank"}'
        )
        scheduler = Scheduler(limit_model("pro"), concurrency=1, retry=no_retry_jitter())
        load(scheduler, ["a"], 1)
        answers = [classify(Action.RETWEET, 400, {}, already, PROBLEM)]
        if earlier is not None:
            answers.insert(0, earlier)
        now, results = 0.0, []
        for answer in answers:
            step = scheduler.next(now)
            if isinstance(step, Wait):
                now = step.until
                step = scheduler.next(now)
            assert isinstance(step, Dispatch)
            results = scheduler.on_response(step.ticket, now, answer)
        (result,) = results
        assert (result.status, result.retweeted) == (Status.OK, True)
        assert result.preexisting is preexisting

    def test_done_when_nothing_is_left_whatever_waits_remain(self) -> None:
        """An account whose items all ended while it waited for its window (paused after a
        refused refresh) leaves no stale wait: with no item, nothing in flight and no refresh,
        the scheduler says Done at once, not Wait until the far window."""
        scheduler = Scheduler(limit_model("basic", limit=3, window=900), concurrency=4)
        load(scheduler, ["a"], 4)
        warm(scheduler, "a")
        first, second = scheduler.next(1.0), scheduler.next(1.0)
        assert isinstance(first, Dispatch) and isinstance(second, Dispatch)
        assert isinstance(scheduler.next(1.0), Wait)  # the last item waits for the window
        refused = classify(Action.RETWEET, 401, {}, UNAUTHORIZED, PROBLEM)
        assert scheduler.on_response(first.ticket, 2.0, refused) == []
        assert scheduler.next(2.0) == Refresh("a")
        ended = scheduler.on_refreshed("a", 3.0, ok=False)
        ended += scheduler.on_response(second.ticket, 4.0, ok())
        assert len(ended) == 3
        assert scheduler.next(4.0) == Done()

    def test_transient_failures_end_as_error_after_max_attempts(self) -> None:
        """After ``max_attempts`` transient failures the item ends as error with its last error."""
        scheduler = Scheduler(limit_model("pro"), concurrency=1, retry=no_retry_jitter(2))
        load(scheduler, ["a"], 1)
        failed = classify(Action.RETWEET, None, {}, b"", None)
        results: list[ItemResult] = []
        now = 0.0
        while not results:
            step = scheduler.next(now)
            if isinstance(step, Wait):
                now = step.until
                continue
            assert isinstance(step, Dispatch)
            results = scheduler.on_response(step.ticket, now, failed)
        (result,) = results
        assert result.status is Status.ERROR and result.attempts == 2
        assert result.error is not None and result.error.type == "network"
        assert isinstance(scheduler.next(now), Done)

    def test_429_waits_for_the_reset_without_spending_an_attempt(self) -> None:
        """A 429 with remaining 0 requeues the item at the head until reset plus margin,
        and does not count against ``max_attempts``."""
        scheduler = Scheduler(
            limit_model("pro"), concurrency=4, retry=no_retry_jitter(1), margins=Margins()
        )
        load(scheduler, ["a"], 2)
        first = scheduler.next(0.0)
        assert isinstance(first, Dispatch)
        headers = {"x-rate-limit-limit": "50", "x-rate-limit-remaining": "0"}
        limited = classify(
            Action.RETWEET, 429, headers | {"x-rate-limit-reset": "100"}, TOO_MANY, PROBLEM
        )
        assert scheduler.on_response(first.ticket, 1.0, limited) == []
        # the second row was sent alongside; it must not overtake the refused first row
        assert scheduler.next(1.0) == Wait(102.0)
        again = scheduler.next(102.0)
        assert isinstance(again, Dispatch) and again.ticket.item.key == "a-0"
        assert again.ticket.tries == 0
        (done,) = scheduler.on_response(again.ticket, 102.5, ok())
        assert done.status is Status.OK and done.attempts == 2
        assert [e.kind for e in scheduler.drain_events()] == [EventKind.RATE_LIMITED]

    def test_429_after_waiting_for_the_reset_parks_the_account(self) -> None:
        """A second 429 to a request sent after the first wait is treated as a hidden limit."""
        park = ParkPolicy(base=120.0, maximum=3600.0, jitter=0.0)
        scheduler = Scheduler(limit_model("pro"), concurrency=4, park=park)
        load(scheduler, ["a"], 1)
        headers = {"x-rate-limit-remaining": "0", "x-rate-limit-reset": "10"}
        limited = classify(Action.RETWEET, 429, headers, TOO_MANY, PROBLEM)
        step = scheduler.next(0.0)
        assert isinstance(step, Dispatch)
        scheduler.on_response(step.ticket, 0.5, limited)
        assert scheduler.next(0.5) == Wait(12.0)
        step = scheduler.next(12.0)
        assert isinstance(step, Dispatch)
        scheduler.on_response(step.ticket, 12.5, limited)
        assert scheduler.state("a", 13.0) is AccountState.PARKED
        assert scheduler.next(13.0) == Wait(132.5)

    def test_hidden_limit_backoff_grows_and_resets_after_success(self) -> None:
        """Hidden limits in a row park for 2, 4, 8 minutes; a success starts over at 2."""
        park = ParkPolicy(jitter=0.0)
        scheduler = Scheduler(limit_model("pro"), concurrency=4, park=park)
        load(scheduler, ["a"], 2)
        hidden = classify(Action.RETWEET, 429, {"x-rate-limit-remaining": "40"}, TOO_MANY, PROBLEM)
        now, waits = 0.0, []
        for outcome in (hidden, hidden, hidden, ok(), hidden):
            step = scheduler.next(now)
            while isinstance(step, Wait):
                now = step.until
                step = scheduler.next(now)
            assert isinstance(step, Dispatch)
            scheduler.on_response(step.ticket, now, outcome)
            parked = [e for e in scheduler.drain_events() if e.kind is EventKind.PARKED]
            waits += [e.until - e.at for e in parked if e.until is not None]
        assert waits == [120.0, 240.0, 480.0, 120.0]

    def test_park_gives_up_after_the_configured_count(self) -> None:
        """With ``give_up_after`` set, the account's items end as error after that many parks."""
        park = ParkPolicy(base=1.0, jitter=0.0, give_up_after=2)
        scheduler = Scheduler(limit_model("pro"), concurrency=4, park=park)
        load(scheduler, ["a"], 3)
        hidden = classify(Action.RETWEET, 429, {}, TOO_MANY, PROBLEM)
        assert hidden.decision is Decision.HIDDEN_LIMIT
        now, results = 0.0, list[ItemResult]()
        while not results:
            step = scheduler.next(now)
            if isinstance(step, Wait):
                now = step.until
                continue
            assert isinstance(step, Dispatch)
            results = scheduler.on_response(step.ticket, now, hidden)
        assert len(results) == 3 and all(r.status is Status.ERROR for r in results)
        assert results[0].error is not None and results[0].error.type == "too-many-requests"

    def test_refresh_failure_pauses_the_account(self) -> None:
        """A 401 asks for one refresh; a refresh that fails ends every item as error."""
        scheduler = Scheduler(limit_model("pro"), concurrency=1)
        load(scheduler, ["a"], 3)
        step = scheduler.next(0.0)
        assert isinstance(step, Dispatch)
        denied = classify(Action.RETWEET, 401, {}, UNAUTHORIZED, PROBLEM)
        assert scheduler.on_response(step.ticket, 0.1, denied) == []
        assert scheduler.next(0.1) == Refresh("a")
        assert scheduler.state("a", 0.1) is AccountState.REFRESHING
        results = scheduler.on_refreshed("a", 0.2, ok=False)
        assert [r.item.key for r in results] == ["a-0", "a-1", "a-2"]
        assert [r.attempts for r in results] == [1, 0, 0]
        assert scheduler.state("a", 0.2) is AccountState.PAUSED
        assert isinstance(scheduler.next(0.2), Done)
        (late,) = scheduler.add(item("a", 9), 0.3)
        assert late.status is Status.ERROR

    def test_answers_after_a_pause_are_never_resent(self) -> None:
        """An item in flight when its account is paused ends as error even if its own answer
        asks for a retry; a success that was in flight still counts as ok."""
        scheduler = Scheduler(limit_model("pro"), concurrency=4, retry=no_retry_jitter())
        load(scheduler, ["a"], 5)
        warm(scheduler, "a")
        steps = [scheduler.next(0.0) for _ in range(3)]
        assert all(isinstance(step, Dispatch) for step in steps)
        first, second, third = (step.ticket for step in steps if isinstance(step, Dispatch))
        denied = classify(Action.RETWEET, 401, {}, UNAUTHORIZED, PROBLEM)
        scheduler.on_response(first, 0.1, denied)
        assert scheduler.next(0.1) == Refresh("a")
        paused = scheduler.on_refreshed("a", 0.2, ok=False)
        assert sorted(r.item.key for r in paused) == ["a-1", "a-4"]
        flaky = classify(Action.RETWEET, 503, {}, UNAVAILABLE, PROBLEM)
        (late,) = scheduler.on_response(second, 0.3, flaky)
        assert late.status is Status.ERROR and late.error is not None
        assert (late.error.type, late.http, late.attempts) == ("unauthorized", 503, 1)
        (fine,) = scheduler.on_response(third, 0.4, ok())
        assert fine.status is Status.OK
        assert isinstance(scheduler.next(0.5), Done)

    def test_401_sent_before_the_refresh_does_not_pause(self) -> None:
        """A 401 to a request sent with the old credentials is resent, not held against the
        refreshed ones."""
        scheduler = Scheduler(limit_model("pro"), concurrency=4)
        load(scheduler, ["a"], 3)
        warm(scheduler, "a")
        first, second = scheduler.next(0.0), scheduler.next(0.0)
        assert isinstance(first, Dispatch) and isinstance(second, Dispatch)
        denied = classify(Action.RETWEET, 401, {}, UNAUTHORIZED, PROBLEM)
        scheduler.on_response(first.ticket, 0.1, denied)
        assert scheduler.next(0.1) == Refresh("a")
        assert scheduler.on_refreshed("a", 0.2, ok=True) == []
        assert scheduler.on_response(second.ticket, 0.3, denied) == []
        assert scheduler.state("a", 0.3) is AccountState.READY

    def test_skewed_429_reset_is_clamped_and_flagged(self) -> None:
        """A 429 whose reset lies a day in the past waits only the margin and flags skew."""
        scheduler = Scheduler(limit_model("pro"), concurrency=1, margins=Margins())
        load(scheduler, ["a"], 1)
        step = scheduler.next(1_000_000.0)
        assert isinstance(step, Dispatch)
        headers = {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(1_000_000 - 86_400)}
        limited = classify(Action.RETWEET, 429, headers, TOO_MANY, PROBLEM)
        scheduler.on_response(step.ticket, 1_000_000.0, limited)
        assert scheduler.next(1_000_000.0) == Wait(1_000_002.0)
        assert EventKind.SKEW in {e.kind for e in scheduler.drain_events()}

    def test_launch_post_cap_spreads_retweets_over_three_hours(self) -> None:
        """On the launch tier the 301st retweet of an account waits for the 3-hour cap, so the
        hidden cap is never hit; undos are not held back by it."""
        limiter = WindowLimiter(limit_model("launch"))
        now = 0.0
        for _ in range(300):
            at = limiter.ready_at("a", Action.RETWEET, now)
            assert at is not None
            now = at
            permit = limiter.acquire("a", Action.RETWEET, now)
            limiter.settle(permit, now + 0.5, RateLimitSnapshot())
        assert now == pytest.approx(5 * 900.5)
        assert limiter.ready_at("a", Action.RETWEET, now) == pytest.approx(10_800.5)
        assert limiter.ready_at("a", Action.UNDO, now) == now

    def test_launch_app_cap_is_shared_by_all_accounts(self) -> None:
        """The app-wide 3-hour cap holds back a fresh account once the app has sent 300."""
        limiter = WindowLimiter(limit_model("launch"))
        for n in range(300):
            account = f"u{n // 50}"  # six accounts, one full 15-minute window each
            assert limiter.ready_at(account, Action.RETWEET, 0.0) == 0.0
            limiter.settle(limiter.acquire(account, Action.RETWEET, 0.0), 0.5, RateLimitSnapshot())
        assert limiter.ready_at("fresh", Action.RETWEET, 1.0) == pytest.approx(10_800.5)


class TestWindow:
    """The per-budget window model."""

    def test_requests_count_until_a_period_after_their_response(self) -> None:
        """A full window frees one slot ``period`` after each response arrived."""
        window = BudgetWindow(limit=2, period=10.0)
        window.acquire(0.0)
        window.acquire(0.0)
        assert window.ready_at(0.0) is None
        window.release(0.4)
        assert window.ready_at(0.5) == pytest.approx(10.4)  # the other is still in flight
        window.release(0.6)
        assert window.ready_at(1.0) == pytest.approx(10.4)

    def test_consistent_exhausted_header_adds_no_wait(self) -> None:
        """A ``remaining: 0`` whose (rounded-up) reset matches our own log costs nothing extra."""
        window = BudgetWindow(limit=2, period=3.0, margins=Margins(skew=0.0))
        window.acquire(0.0)
        window.acquire(0.0)
        window.release(0.002, LimitReading(2, 1, 4.0))
        window.release(0.003, LimitReading(2, 0, 4.0))
        assert window.ready_at(1.0) == pytest.approx(3.002)

    def test_server_counting_more_than_us_adds_phantoms_until_reset(self) -> None:
        """When the server reports more used than we sent, the difference counts until the
        reset plus margin."""
        window = BudgetWindow(limit=5, period=900.0, margins=Margins())
        window.acquire(0.0)
        assert window.release(1.0, LimitReading(5, 0, 300.0)) is False
        assert window.ready_at(1.0) == pytest.approx(302.0)

    def test_limit_header_replaces_the_model(self) -> None:
        """``x-rate-limit-limit`` becomes the window's limit."""
        window = BudgetWindow(limit=1, period=900.0)
        window.acquire(0.0)
        window.release(1.0, LimitReading(50, 49, 900.0))
        assert window.limit == 50 and window.ready_at(1.0) == 1.0

    @pytest.mark.parametrize(
        ("reset", "skewed"),
        [(50.0, True), (99.0, False), (10.0**12, True), (None, False)],
    )
    def test_reset_out_of_range_is_flagged(self, reset: float | None, skewed: bool) -> None:
        """Resets far in the past or far ahead are flagged as suspected clock skew."""
        window = BudgetWindow(limit=5, period=900.0, margins=Margins())
        assert window.observe(100.0, LimitReading(5, 4, reset)) is skewed

    def test_day_headers_become_a_window_of_their_own(self) -> None:
        """An exhausted ``x-user-limit-24hour`` blocks both endpoints of that account until its
        reset, and no other account."""
        limiter = WindowLimiter(limit_model("pro"), Margins())
        permit = limiter.acquire("a", Action.RETWEET, 0.0)
        day = LimitReading(1000, 0, 40_000.0)
        limiter.settle(permit, 1.0, RateLimitSnapshot(LimitReading(50, 49, 900.0), day))
        assert limiter.window(("a", USER_DAY)) is not None
        assert limiter.ready_at("a", Action.UNDO, 2.0) == pytest.approx(40_002.0)
        assert limiter.ready_at("b", Action.RETWEET, 2.0) == 2.0


def test_idle_windows_are_dropped_and_learnt_limits_kept() -> None:
    """A window is dropped once everything it counted has passed (a later request finds a
    fresh one with the same answer), but a window whose limit a header lowered stays."""
    limiter = WindowLimiter(limit_model("pro"), Margins(skew=0.0))
    limiter.settle(limiter.acquire("a", Action.RETWEET, 0.0), 1.0, RateLimitSnapshot())
    lowered = RateLimitSnapshot(LimitReading(25, 24, 902.0))
    limiter.settle(limiter.acquire("b", Action.RETWEET, 0.0), 2.0, lowered)
    assert limiter.window(("a", "retweet")) is not None
    limiter.settle(limiter.acquire("c", Action.RETWEET, 1000.0), 1000.5, RateLimitSnapshot())
    assert limiter.window(("a", "retweet")) is None
    assert limiter.ready_at("a", Action.RETWEET, 1001.0) == 1001.0
    kept = limiter.window(("b", "retweet"))
    assert kept is not None and kept.limit == 25 and limiter.slowdown() == 2.0


def test_an_account_with_nothing_left_keeps_its_turn_and_its_ended_slow_start() -> None:
    """An account whose last item is answered counts as finished at once, yet an item added for
    it before its next turn goes on that turn (ahead of an account woken later), and its slow
    start stays over: two of its requests may then fly together."""
    scheduler = Scheduler(limit_model("basic", limit=50, window=900), concurrency=8)
    scheduler.add(item("a", 1))
    scheduler.add(item("b", 2))
    first = scheduler.next(0.0)
    assert isinstance(first, Dispatch) and first.ticket.item.account == "a"
    assert [r.status for r in scheduler.on_response(first.ticket, 0.0, ok())] == [Status.OK]
    assert scheduler.state("a", 0.0) is AccountState.FINISHED
    assert scheduler.overview(0.0).count(AccountState.FINISHED) == 1
    for row in (item("c", 3), item("a", 4), item("a", 5)):
        assert scheduler.add(row, 0.0) == []
    sent = []
    while isinstance(step := scheduler.next(0.0), Dispatch):
        sent.append(step.ticket.item.key)
    assert sent == ["b-2", "a-4", "c-3", "a-5"]


@pytest.mark.parametrize("seed", range(20))
def test_account_queues_agree_with_a_list_per_account(seed: int) -> None:
    """`AccountQueues` (one ticket held bare, several in a deque) answers every call as a plain
    list per account would: put appends, put_back returns a ticket ahead of every later one,
    take and head read the front, drain empties, and the size counts them all."""
    rng = random.Random(seed)
    queues, model = AccountQueues(), dict[str, list[Ticket]]()
    taken: list[Ticket] = []
    serial = 0
    for _ in range(400):
        account = rng.choice("abc")
        move = rng.random()
        if move < 0.4:
            serial += 1
            ticket = Ticket(serial, item(account, serial))
            queues.put(ticket)
            model.setdefault(account, []).append(ticket)
        elif move < 0.65 and model.get(account):
            taken.append(queues.take(account))
            assert taken[-1] is model[account].pop(0)
        elif move < 0.85 and taken:
            back = taken.pop(rng.randrange(len(taken)))
            queues.put_back(back)
            line = model.setdefault(back.item.account, [])
            line.insert(
                next((i for i, t in enumerate(line) if t.serial > back.serial), len(line)), back
            )
        elif move < 0.9:
            assert queues.drain(account) == model.pop(account, [])
        model = {a: line for a, line in model.items() if line}
        assert queues.head(account) is (model[account][0] if account in model else None)
        assert len(queues) == sum(len(line) for line in model.values())
        assert sorted(queues.accounts()) == sorted(model)


@pytest.mark.parametrize("seed", range(20))
def test_account_queues_hand_out_added_items_as_fresh_tickets(seed: int) -> None:
    """Items queued with `AccountQueues.add` (held as a pair, not as a ticket) come out of take,
    head and drain as ``Ticket(serial, item)``, in serial order among tickets put and put back,
    as a plain list of those tickets per account gives them."""
    rng = random.Random(seed)
    queues, model = AccountQueues(), dict[str, list[Ticket]]()
    taken: list[Ticket] = []
    serial = 0
    for _ in range(400):
        account = rng.choice("abc")
        move = rng.random()
        if move < 0.45:
            serial += 1
            row = item(account, serial)
            if rng.random() < 0.7:
                queues.add(serial, row)
            else:
                queues.put(Ticket(serial, row))
            model.setdefault(account, []).append(Ticket(serial, row))
        elif move < 0.7 and model.get(account):
            taken.append(queues.take(account))
            assert taken[-1] == model[account].pop(0)
        elif move < 0.88 and taken:
            back = replace(taken.pop(rng.randrange(len(taken))), sent=1)
            queues.put_back(back)
            line = model.setdefault(back.item.account, [])
            line.insert(
                next((i for i, t in enumerate(line) if t.serial > back.serial), len(line)), back
            )
        elif move < 0.92:
            assert queues.drain(account) == model.pop(account, [])
        model = {a: line for a, line in model.items() if line}
        assert queues.head(account) == (model[account][0] if account in model else None)
        assert len(queues) == sum(len(line) for line in model.values())
        assert sorted(queues.accounts()) == sorted(model)


def test_an_account_that_comes_back_counts_as_finished_once_it_is_done_again() -> None:
    """An account forgotten when it finished, then given a new item, stops counting as finished
    while that item waits or flies, and counts once again (not twice) when it is done, as
    walking every account's `state` says."""
    scheduler = Scheduler(limit_model("basic", limit=50, window=900), concurrency=8)

    def finished() -> int:
        return scheduler.overview(0.0).count(AccountState.FINISHED)

    def answer_all() -> None:
        while isinstance(step := scheduler.next(0.0), Dispatch):
            assert [r.status for r in scheduler.on_response(step.ticket, 0.0, ok())] == [Status.OK]

    scheduler.add_many([item("a", 1), item("b", 2)], 0.0)
    answer_all()
    assert finished() == 2
    for n in (3, 4):
        scheduler.add(item("a", n), 0.0)
        assert finished() == 1 and scheduler.state("a", 0.0) is AccountState.READY
        step = scheduler.next(0.0)
        assert isinstance(step, Dispatch) and step.ticket.item.key == f"a-{n}"
        assert finished() == 1 and scheduler.state("a", 0.0) is AccountState.WAITING
        scheduler.on_response(step.ticket, 0.0, ok())
        assert finished() == 2 and scheduler.state("a", 0.0) is AccountState.FINISHED


def test_seeded_runs_are_reproducible() -> None:
    """Two runs with the same RNG seed make the same decisions at the same times."""

    def one_run(seed: int) -> list[tuple[float, str]]:
        retry = RetryPolicy(max_attempts=4, initial=0.5, maximum=5.0, rng=random.Random(seed))
        scheduler = Scheduler(limit_model("basic", limit=5, window=3), concurrency=3, retry=retry)
        load(scheduler, ["a", "b"], 6)
        flaky: Callable[[int], bool] = lambda n: n % 3 == 0  # noqa: E731 - a tiny fault script
        now, sends, n = 0.0, [], 0
        while not isinstance(step := scheduler.next(now), Done):
            if isinstance(step, Wait):
                now = step.until
            elif isinstance(step, Dispatch):
                n += 1
                sends.append((now, step.ticket.item.key))
                body = json.dumps({"data": {"retweeted": True}}).encode()
                outcome = classify(
                    Action.RETWEET, 503 if flaky(n) else 200, {}, body, "application/json"
                )
                scheduler.on_response(step.ticket, now + 0.01, outcome)
            else:
                raise AssertionError(step)
        return sends

    assert one_run(7) == one_run(7)
    assert one_run(7) != one_run(8)


# -- randomized: interleavings of add / dispatch / answer / 429 / 401 / refresh ---------------

#: seeds run in CI; ``BULKRT_SCHEDULER_SEEDS=2000`` runs that many by hand
SEEDS = range(int(os.environ.get("BULKRT_SCHEDULER_SEEDS", "25")))
HIDDEN = b'{"title":"Too Many Requests","type":"about:blank","status":429,"detail":"hidden"}'


def walked(scheduler: Scheduler, accounts: set[str], now: float, top: int) -> Overview:
    """What walking `state` and `resumes_at` over every account says, as an `Overview`."""
    states = Counter(scheduler.state(a, now) for a in accounts)
    resumes = sorted((t, a) for a in accounts if (t := scheduler.resumes_at(a, now)) is not None)
    return Overview(now, tuple((s, states[s]) for s in AccountState), tuple(resumes[:top]))


def agrees(got: Overview, walk: Overview, latest_walked: float | None) -> bool:
    """The overview equals the walk, and its ``latest`` is no earlier than the latest
    `resumes_at` (an account's resume may be a first check before its window opens later)."""
    if replace(got, latest=None) != walk:
        return False
    if latest_walked is None:
        return True
    return got.latest is not None and got.latest >= latest_walked


def latest_resume(scheduler: Scheduler, accounts: set[str], now: float) -> float | None:
    """The latest `resumes_at` over every account."""
    return max(
        (t for a in accounts if (t := scheduler.resumes_at(a, now)) is not None), default=None
    )


def seeded_world(
    seed: int,
) -> tuple[random.Random, list[Item], Scheduler, FixedWindowServer, float]:
    """A seeded run's world: its generator, 1-60 rows over 1-7 accounts and 4 Tweets, a scheduler
    and a server whose windows match its model (1-4 per 1, 2 or 5 s), and a fault rate."""
    rng = random.Random(seed)
    accounts = [f"a{n}" for n in range(rng.randint(1, 7))]
    rows = [
        item(rng.choice(accounts), n, rng.choice(list(Action)), tweet=str(rng.randint(1, 4)))
        for n in range(rng.randint(1, 60))
    ]
    limit, period = rng.randint(1, 4), rng.choice([1, 2, 5])
    scheduler = Scheduler(
        limit_model("basic", limit=limit, window=period),
        concurrency=rng.randint(1, 5),
        retry=RetryPolicy(max_attempts=3, initial=0.1, maximum=1.0, rng=random.Random(seed)),
        park=ParkPolicy(base=0.5, maximum=2.0, give_up_after=3, rng=random.Random(seed)),
        margins=Margins(skew=0.0),
    )
    server = FixedWindowServer(limit=limit, period=float(period))
    return rng, rows, scheduler, server, rng.choice([0.0, 0.1, 0.3])


class RandomRun:
    """One seeded run against a server whose windows match the model, with random faults."""

    def __init__(self, seed: int) -> None:
        self.rng, self.rows, self.scheduler, self.server, self.fault_rate = seeded_world(seed)
        self.now, self.seq, self.fed = 0.0, 0, 0
        self.added: set[str] = set()
        self.flying: Counter[tuple[str, str]] = Counter()
        self.events: list[tuple[float, int, Ticket]] = []
        self.reported: Counter[str] = Counter()

    def feed(self) -> None:
        """Add the next rows now and then, as the dispatcher's lookahead does."""
        while self.fed < len(self.rows) and self.rng.random() < 0.3:
            row = self.rows[self.fed]
            self.added.add(row.account)
            self.reported.update(r.item.key for r in self.scheduler.add(row, self.now))
            self.fed += 1

    def dispatch(self, ticket: Ticket) -> None:
        """Send: never a second request on one (account, Tweet); answered 0-300 ms later."""
        key = (ticket.item.account, ticket.item.tweet_id)
        assert not self.flying[key], f"two requests in flight on {key}"
        self.flying[key] += 1
        self.seq += 1
        heapq.heappush(self.events, (self.now + self.rng.uniform(0.0, 0.3), self.seq, ticket))

    def answer(self) -> None:
        """The earliest answer arrives: the server's, or a 503, a hidden 429 or a 401."""
        at, _, ticket = heapq.heappop(self.events)
        self.now = max(self.now, at)
        self.flying[(ticket.item.account, ticket.item.tweet_id)] -= 1
        status, head, body = self.server.handle(ticket.item, self.now)
        if self.rng.random() < self.fault_rate:
            faults: list[Reply] = [
                (503, {}, UNAVAILABLE),
                (429, {}, HIDDEN),
                (401, {}, UNAUTHORIZED),
            ]
            status, head, body = self.rng.choice(faults)
        outcome = classify(ticket.item.action, status, head, body, PROBLEM)
        self.reported.update(r.item.key for r in self.scheduler.on_response(ticket, at, outcome))

    def step(self) -> bool:
        """One step of the shell's loop; False once Done with every row fed."""
        scheduler, now = self.scheduler, self.now
        step = scheduler.next(now)
        if isinstance(step, Done) and self.fed == len(self.rows):
            return False
        if isinstance(step, Dispatch):
            self.dispatch(step.ticket)
        elif isinstance(step, Refresh):
            results = scheduler.on_refreshed(step.account, now, self.rng.random() < 0.7)
            self.reported.update(r.item.key for r in results)
        elif self.events and (not isinstance(step, Wait) or self.events[0][0] <= step.until):
            self.answer()
        elif isinstance(step, Wait):
            self.now = max(now, step.until)
        else:
            assert isinstance(step, Done), "Idle with nothing in flight would hang the shell"
        return True

    def run(self) -> None:
        """Play to the end, comparing the overview with a walk at random moments."""
        for _ in range(20_000):
            self.feed()
            if self.rng.random() < 0.3:
                top = self.rng.randint(1, 4)
                got = self.scheduler.overview(self.now, top)
                walk = walked(self.scheduler, self.added, self.now, top)
                assert agrees(got, walk, latest_resume(self.scheduler, self.added, self.now))
            if not self.step():
                break
        else:
            raise AssertionError("the run did not finish")
        assert not self.events and self.scheduler.in_flight == 0
        assert self.reported == Counter(r.key for r in self.rows), "each item reported once"
        assert not [k for k, n in self.server.statuses.items() if k[1] == 429 and n]
        final = self.scheduler.overview(self.now, 3)
        assert final == walked(self.scheduler, self.added, self.now, 3)
        assert final.latest is None


@pytest.mark.parametrize("seed", SEEDS)
def test_random_interleavings_keep_the_invariants(seed: int) -> None:
    """For random interleavings of adds, answers (503, hidden 429, 401), refreshes and waits,
    no (account, Tweet) has two requests in flight, a server whose windows match the model
    never answers 429, every item is reported exactly once, the run ends Done, and
    ``overview`` always equals walking every account's ``state`` and ``resumes_at``."""
    RandomRun(seed).run()


def test_a_request_held_by_a_shared_budget_waits_without_spending_an_attempt() -> None:
    """The multi-machine mode's shared budget can refuse a request before it leaves (another
    worker or run spent the window): the account's items wait until the budget frees, in order,
    and the item's attempts count only the request that went out."""
    s = Scheduler(limit_model("pro"), concurrency=4)
    s.add(item("acme", 1, tweet="7"), 0.0)
    s.add(item("acme", 2, Action.UNDO, tweet="7"), 0.0)
    first = s.next(0.0)
    assert isinstance(first, Dispatch) and first.ticket.item.key == "acme-1"
    assert s.on_response(first.ticket, 0.1, Outcome(Decision.HELD, until=30.0, unsent=True)) == []
    assert s.next(0.2) == Wait(30.0)  # neither the held item nor the undo behind it goes
    assert [e.kind for e in s.drain_events()] == [EventKind.HELD]
    again = s.next(30.0)
    assert isinstance(again, Dispatch) and again.ticket.item.key == "acme-1"
    (result,) = s.on_response(again.ticket, 30.5, ok())
    assert (result.item.key, result.status, result.attempts) == ("acme-1", Status.OK, 1)
    undo = s.next(30.5)
    assert isinstance(undo, Dispatch) and undo.ticket.item.key == "acme-2"


class Lockstep:
    """One seeded run that feeds, dispatches and answers in random batches, through the batched
    calls or through one call per item; its transcript is everything the scheduler said."""

    def __init__(self, seed: int, *, batched: bool) -> None:
        self.batched = batched
        self.rng, self.rows, self.scheduler, self.server, self.fault_rate = seeded_world(seed)
        self.now, self.seq, self.fed = 0.0, 0, 0
        self.flying: list[tuple[float, int, Ticket]] = []
        self.transcript: list[object] = []

    def feed(self) -> None:
        """Add the next 0-3 rows."""
        rows = self.rows[self.fed : self.fed + self.rng.randint(0, 3)]
        self.fed += len(rows)
        s, now = self.scheduler, self.now
        results = (
            s.add_many(rows, now) if self.batched else [r for i in rows for r in s.add(i, now)]
        )
        self.transcript.append(("add", results))

    def dispatch(self) -> Step | None:
        """Take up to 1-4 tickets at once; returns the step after them (None: the limit)."""
        s, now, limit = self.scheduler, self.now, self.rng.randint(1, 4)
        if self.batched:
            tickets, then = s.next_batch(now, limit)
        else:
            tickets, then = [], None
            while len(tickets) < limit:
                step = s.next(now)
                if not isinstance(step, Dispatch):
                    then = step
                    break
                tickets.append(step.ticket)
        self.transcript.append(("next", tickets, then))
        for ticket in tickets:
            self.seq += 1
            heapq.heappush(self.flying, (now + self.rng.uniform(0.0, 0.3), self.seq, ticket))
        return then

    def answer(self) -> None:
        """The earliest 1-3 answers arrive together: the server's, or a 503, 429 or 401."""
        self.now = max(self.now, self.flying[0][0])
        answers: list[tuple[Ticket, Outcome]] = []
        for _ in range(min(len(self.flying), self.rng.randint(1, 3))):
            ticket = heapq.heappop(self.flying)[2]
            reply = self.server.handle(ticket.item, self.now)
            if self.rng.random() < self.fault_rate:
                faults: list[Reply] = [(503, {}, UNAVAILABLE), (429, {}, HIDDEN)]
                reply = self.rng.choice([*faults, (401, {}, UNAUTHORIZED)])
            answers.append((ticket, classify(ticket.item.action, *reply, PROBLEM)))
        s, now = self.scheduler, self.now
        if self.batched:
            results = s.on_responses(answers, now)
        else:
            results = [
                r for ticket, outcome in answers for r in s.on_response(ticket, now, outcome)
            ]
        self.transcript.append(("answer", results, s.drain_events()))

    def play(self) -> list[object]:
        """Play to the end; returns the transcript."""
        for _ in range(20_000):
            self.feed()
            step = self.dispatch()
            if step is None:
                continue
            if isinstance(step, Done) and self.fed == len(self.rows):
                assert not self.flying
                return self.transcript
            if isinstance(step, Refresh):
                ok = self.rng.random() < 0.7
                self.transcript.append(
                    ("refresh", self.scheduler.on_refreshed(step.account, self.now, ok))
                )
            elif self.flying and (not isinstance(step, Wait) or self.flying[0][0] <= step.until):
                self.answer()
            elif isinstance(step, Wait):
                self.now = max(self.now, step.until)
        raise AssertionError("the run did not finish")


@pytest.mark.parametrize("seed", SEEDS)
def test_batched_calls_say_what_one_call_per_item_says(seed: int) -> None:
    """``add_many``, ``next_batch`` and ``on_responses`` give the same tickets, steps, results and
    events as ``add``, ``next`` and ``on_response`` called once per item in the same order, in
    random runs with waits, 503s, hidden 429s, 401s and refreshes; every item is reported once."""
    batched = Lockstep(seed, batched=True)
    transcript = batched.play()
    assert transcript == Lockstep(seed, batched=False).play()
    reported = Counter(
        r.item.key
        for entry in transcript
        if entry[0] != "next"  # type: ignore[index]
        for r in entry[1]  # type: ignore[index]
    )
    assert reported == Counter(row.key for row in batched.rows)


def test_a_batch_stops_at_its_limit_and_at_the_concurrency_cap() -> None:
    """``next_batch`` hands out at most ``limit`` tickets (then None: call again) and never more
    than the concurrency cap allows in flight (then the step ``next`` gives: ``Idle``)."""
    s = Scheduler(limit_model("pro"), concurrency=3)
    assert s.add_many([item(a, 0) for a in "abcd"]) == []
    warm(s, "a", "b", "c", "d")  # past the slow start: each account may have several in flight
    assert s.add_many([item(a, n) for a in "abcd" for n in range(1, 3)]) == []
    first, then = s.next_batch(0.0, 2)
    assert [t.item.key for t in first] == ["a-1", "b-1"] and then is None
    rest, then = s.next_batch(0.0, 10)
    assert [t.item.key for t in rest] == ["c-1"] and then == Idle()
    with pytest.raises(ValueError, match="at least 1"):
        s.next_batch(0.0, 0)


class BareLockstep(Lockstep):
    """`Lockstep` whose answers lose their rate-limit headers half the time (the limiter's plain
    log, which the batched calls settle inline), and whose transcript also holds, after each
    batch of answers, every account's state and resume time and the overview."""

    def answer(self) -> None:
        """The earliest 1-3 answers arrive together, half of them without headers."""
        self.now = max(self.now, self.flying[0][0])
        answers: list[tuple[Ticket, Outcome]] = []
        for _ in range(min(len(self.flying), self.rng.randint(1, 3))):
            ticket = heapq.heappop(self.flying)[2]
            status, head, body = self.server.handle(ticket.item, self.now)
            if self.rng.random() < 0.5:
                head = {}
            if self.rng.random() < self.fault_rate:
                faults: list[Reply] = [(503, {}, UNAVAILABLE), (429, {}, HIDDEN)]
                status, head, body = self.rng.choice([*faults, (401, {}, UNAUTHORIZED)])
            answers.append((ticket, classify(ticket.item.action, status, head, body, PROBLEM)))
        s, now = self.scheduler, self.now
        if self.batched:
            results = s.on_responses(answers, now)
        else:
            results = [
                r for ticket, outcome in answers for r in s.on_response(ticket, now, outcome)
            ]
        states = [(s.state(a, now), s.resumes_at(a, now)) for a in sorted(self.names())]
        self.transcript.append(("answer", results, s.drain_events(), states, s.overview(now)))

    def names(self) -> set[str]:
        """The accounts of the run's rows."""
        return {row.account for row in self.rows}


@pytest.mark.parametrize("seed", SEEDS)
def test_batched_calls_keep_the_same_state_when_answers_carry_no_headers(seed: int) -> None:
    """With answers that carry no rate-limit headers half the time, the batched calls give the
    same tickets, steps, results and events as one call per item, and leave every account in the
    same state, with the same resume time and the same overview, after every batch of answers."""
    assert BareLockstep(seed, batched=True).play() == BareLockstep(seed, batched=False).play()


def test_an_item_is_the_same_record_however_it_is_built() -> None:
    """An item built by position, by keyword, by `dataclasses.replace`, by copy or through pickle
    is equal to (and hashes as) the one built by position, with every field in place; its fields
    stay read-only."""
    import copy
    import dataclasses
    import pickle

    built = Item("k1", "c", "acme", "20", Action.UNDO, "job.csv", 2)
    others = [
        Item(
            key="k1",
            campaign="c",
            account="acme",
            tweet_id="20",
            action=Action.UNDO,
            source="job.csv",
            line=2,
        ),
        replace(Item("k0", "c", "acme", "20", Action.UNDO, "job.csv", 9), key="k1", line=2),
        copy.copy(built),
        copy.deepcopy(built),
        pickle.loads(pickle.dumps(built)),
    ]
    for other in others:
        assert type(other) is Item and other == built and hash(other) == hash(built)
    assert dataclasses.astuple(built) == ("k1", "c", "acme", "20", Action.UNDO, "job.csv", 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.line = 3  # type: ignore[misc]
