"""The request path's quick paths answer exactly as the general code they stand in for: a job
row's quick check as the full check, a derived key's text as ``json.dumps``, a ledger line's
timestamp as `LedgerRecord.of` stamps it; and a run's tuning of the cycle collector is undone.

Randomized over a fixed number of seeds; ``BULKRT_QUICK_PATH_SEEDS=N`` runs N of them by hand.
"""

from __future__ import annotations

import gc
import json
import os
import random
from datetime import UTC, datetime

import pytest

from bulkrt.core.items import Action, Item, Status
from bulkrt.jobs.keys import derived_key
from bulkrt.jobs.rows import _checked_row, check_row
from bulkrt.ledger.record import LedgerRecord
from bulkrt.shell.dispatcher import _Stamps
from bulkrt.shell.runner import few_collections

SEEDS = range(int(os.environ.get("BULKRT_QUICK_PATH_SEEDS", "3")))

#: characters that each take some branch of the checks: quotes, backslashes, controls, DEL,
#: lone surrogates, non-ASCII digits and letters, URL parts, whitespace, the reserved ``[``
_ALPHABET = [
    *"aZ_09 [\"\\/:?#.",
    "\x00", "\x1f", "\x7f", "\t", "\ud800", "\udcff", "\u0663", "é", "\u2028",
]  # fmt: skip
_VALUES = [
    "", " ", "20", " 20 ", "0", "007", "9223372036854775807", "9223372036854775808",
    "12345678901234567890", "https://x.com/jack/status/20", "https://example.com/status/20",
    "retweet", "Retweet", " UNDO ", "unretweet", "like", "acme", "other", "spring", "[k]",
    "a" * 200, "a" * 201,
]  # fmt: skip
ITEM = Item("k1", "c", "acme", "20", Action.RETWEET, "job.csv", 2)
_FIELDS = ("account", "tweet_id", "action", "campaign", "id")


def _random_text(draw: random.Random, longest: int) -> str:
    return "".join(draw.choice(_ALPHABET) for _ in range(draw.randint(0, longest)))


def _random_value(draw: random.Random) -> object:
    kind = draw.random()
    if kind < 0.45:
        return draw.choice(_VALUES)
    if kind < 0.8:
        return _random_text(draw, 6)
    return draw.choice([None, 20, -1, 2.5, True, [], {}, "acme"])


@pytest.mark.parametrize("seed", SEEDS)
def test_a_rows_quick_check_gives_what_the_full_check_gives(seed: int) -> None:
    """For random rows (valid, invalid, and on the edge of each rule), `check_row` returns the
    same row or the same problems as checking every field in turn."""
    draw = random.Random(seed)
    accounts = {"acme", "a" * 200, " acme"}
    plain = 0
    for _ in range(6_000):
        fields: dict[str, object] = {}
        for name in _FIELDS:
            if draw.random() < 0.85 or name in ("account", "tweet_id", "action"):
                fields[name] = _random_value(draw)
        if draw.random() < 0.3:  # mostly valid rows too, so the quick path is taken
            fields.update(account="acme", tweet_id=str(draw.randint(1, 10**12)), action="retweet")
        default = draw.choice(["spring", "", "bad\udcff", 'q"uote'])
        got = check_row(fields, source="j", line=2, accounts=accounts, default_campaign=default)
        want = _checked_row(fields, "j", 2, accounts, default, None)
        assert got == want, fields
        plain += not isinstance(want, list)
    assert plain > 600  # the valid side was exercised, not only the problems


@pytest.mark.parametrize("seed", SEEDS)
def test_a_derived_key_is_the_json_text_of_its_values(seed: int) -> None:
    """A derived key is byte for byte ``json.dumps`` of the row's four values and its number
    (compact, non-ASCII kept), whatever characters the values hold."""
    draw = random.Random(seed)
    for _ in range(15_000):
        campaign, account, action, tweet = (_random_text(draw, 5) for _ in range(4))
        values = [campaign, account, action, tweet]
        n = draw.choice([0, 1, draw.randint(0, 10**9)])
        want = json.dumps([*values, n], ensure_ascii=False, separators=(",", ":"))
        assert derived_key(campaign, account, action, tweet, n) == want


@pytest.mark.parametrize("seed", SEEDS)
def test_a_ledger_time_is_stamped_as_the_record_stamps_it(seed: int) -> None:
    """The dispatcher's ledger timestamps are the text `LedgerRecord.of` writes for the same
    epoch seconds, also on the microsecond that rounds into the next second or millisecond and
    when times come out of order (the text of the second is made once per second)."""
    draw = random.Random(seed)
    stamps = _Stamps()
    for _ in range(20_000):
        base = draw.choice([draw.uniform(0, 4e9), float(draw.randint(0, 4 * 10**9))])
        edge = [0.0, 4e-7, 5e-7, 6e-7, -4e-7, 0.9999995, 0.9999996, 0.0004999, 0.0005]
        seconds = base + draw.choice([*edge, draw.random()])
        want = LedgerRecord.of(
            ITEM, run="r", user_id="1", at=datetime.fromtimestamp(seconds, UTC),
            status=Status.OK, retweeted=True, attempts=1,
        ).ts  # fmt: skip
        assert stamps(seconds) == want, seconds


def test_a_run_leaves_the_cycle_collector_as_it_found_it() -> None:
    """While a run sends, cycles are collected rarely and start-up's objects are set aside; on
    leaving, also by an error, the thresholds and the set-aside objects are as before (tests
    run many runs in one process)."""
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    with pytest.raises(RuntimeError), few_collections():
        assert gc.get_threshold()[0] > thresholds[0]
        assert gc.get_freeze_count() > frozen
        raise RuntimeError("the run failed")
    assert (gc.get_threshold(), gc.get_freeze_count()) == (thresholds, frozen)
