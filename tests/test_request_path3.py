"""The request path's third pass: the sent journal's fsyncs come in groups while a run's requests
are out, each request still leaving only once its ``sent`` line is on disk and never held back
for long; and the faster pieces (nonces, ledger times, redaction, ledger writes) give what the
plain ones gave.

Randomized over ``BULKRT_PATH3_CASES`` cases (2000 by default) from ``BULKRT_PATH3_SEED`` (0)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
import structlog

from bulkrt import logs
from bulkrt.core.attribution import Origin
from bulkrt.core.items import Action, Item
from bulkrt.ledger import journal as journal_module
from bulkrt.ledger.journal import SentJournal, read_origins

CASES = int(os.environ.get("BULKRT_PATH3_CASES", "2000"))
SEED = int(os.environ.get("BULKRT_PATH3_SEED", "0"))


def _item(n: int) -> Item:
    return Item(f"k{n}", "c", "acme", str(20 + n), Action.RETWEET, "job.csv", n + 2)


def _sent_keys(path: Path) -> list[str]:
    """The keys of the ``sent`` lines on disk, in order."""
    lines = path.read_text().splitlines()
    return [doc["key"] for doc in map(json.loads, lines) if doc["e"] == "sent"]


class _Batches:
    """Counts the journal's writes (each is one write and one fsync of a batch), and what each
    wrote; wraps the real `append_lines`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches: list[bytes] = []
        real = journal_module.append_lines

        def counted(fd: int, path: Path, data: bytes) -> None:
            real(fd, path, data)
            self.batches.append(data)

        monkeypatch.setattr(journal_module, "append_lines", counted)


async def test_senders_that_come_one_at_a_time_share_one_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 8 requests in flight, senders that come one after another within the linger share
    one batch (one fsync), which goes as soon as a quarter of the requests in flight wait for it,
    not after the linger; each sender returns with its ``sent`` line on disk."""
    batches = _Batches(monkeypatch)
    journal = SentJournal(tmp_path / "l.jsonl")
    journal.open(finished=set())
    journal.gather(60.0, lambda: 8)  # a linger no test waits out
    returned: list[str] = []

    async def send(n: int) -> None:
        assert await journal.before_send(_item(n))
        assert f"k{n}" in _sent_keys(journal.path)  # durable before it returns
        returned.append(f"k{n}")

    with anyio.fail_after(10):
        async with anyio.create_task_group() as run:
            run.start_soon(journal.flush_forever)
            await anyio.lowlevel.checkpoint()  # the flusher waits for its kick
            async with anyio.create_task_group() as senders:
                senders.start_soon(send, 0)
                await anyio.sleep(0.05)  # the first one waits alone meanwhile
                assert returned == []
                senders.start_soon(send, 1)  # 2 of 8: a quarter, the batch goes
            run.cancel_scope.cancel()
    journal.close()
    assert sorted(returned) == ["k0", "k1"]
    assert len(batches.batches) == 1
    assert batches.batches[0].count(b'"e":"sent"') == 2


async def test_a_lone_sender_waits_at_most_the_linger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sender alone in its batch while many requests are in flight leaves once the linger is
    over, its line on disk; a sender with no other request in flight never lingers."""
    batches = _Batches(monkeypatch)
    journal = SentJournal(tmp_path / "l.jsonl")
    journal.open(finished=set())
    in_flight = [64]
    journal.gather(0.2, lambda: in_flight[0])
    with anyio.fail_after(10):
        async with anyio.create_task_group() as run:
            run.start_soon(journal.flush_forever)
            await anyio.lowlevel.checkpoint()  # the flusher waits for its kick
            started = anyio.current_time()
            assert await journal.before_send(_item(0))
            lingered = anyio.current_time() - started
            in_flight[0] = 1
            with anyio.fail_after(30):  # far below the 60 s it would linger otherwise
                journal.gather(60.0, lambda: in_flight[0])
                assert await journal.before_send(_item(1))
            run.cancel_scope.cancel()
    journal.close()
    assert lingered >= 0.2
    assert _sent_keys(journal.path) == ["k0", "k1"]
    assert len(batches.batches) == 2


async def test_without_gather_a_batch_never_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal never told to gather (a simulation in virtual time, the fleet) writes each
    batch as soon as its flusher is free, whatever is in flight: the journal's old behaviour."""
    batches = _Batches(monkeypatch)
    journal = SentJournal(tmp_path / "l.jsonl")
    journal.open(finished=set())
    with anyio.fail_after(10):
        async with anyio.create_task_group() as run:
            run.start_soon(journal.flush_forever)
            await anyio.lowlevel.checkpoint()  # the flusher waits for its kick
            for n in range(3):
                assert await journal.before_send(_item(n))
            run.cancel_scope.cancel()
    journal.close()
    assert _sent_keys(journal.path) == ["k0", "k1", "k2"]
    assert len(batches.batches) == 3


async def test_a_run_ending_while_a_batch_gathers_writes_its_lines_on_close(
    tmp_path: Path,
) -> None:
    """The run ends while a batch gathers (its sender cancelled with it): closing the journal
    writes the queued lines, so the attempt that may have left reads as possibly applied."""
    journal = SentJournal(tmp_path / "l.jsonl")
    journal.open(finished=set())
    journal.gather(60.0, lambda: 64)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as run:
            run.start_soon(journal.flush_forever)
            await anyio.lowlevel.checkpoint()  # the flusher waits for its kick
            run.start_soon(journal.before_send, _item(0))
            await anyio.sleep(0.05)
            run.cancel_scope.cancel()
    journal.close()
    assert _sent_keys(journal.path) == ["k0"]
    assert read_origins(tmp_path / "l.jsonl") == {("c", "acme", "20"): Origin.UNDECIDED}
    again = SentJournal(tmp_path / "l.jsonl")
    again.open(finished=set())
    assert again.evidence("k0").possible
    again.close()


def test_lines_logged_while_a_request_is_sent_name_its_account_and_item(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What is logged while a request is being sent (a token refresh's warning, say) names the
    request's account and item, unless the line names an account itself; nothing is added to
    lines logged outside a request."""
    logs.configure(json=True)
    log = structlog.get_logger()
    request = logs.REQUEST.set(("acme", "k7"))
    try:
        log.warning("inside", detail="x")
        log.warning("named", account="other")
    finally:
        logs.REQUEST.reset(request)
    log.warning("outside")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["event"], line.get("account"), line.get("item")) for line in lines] == [
        ("inside", "acme", "k7"),
        ("named", "other", "k7"),
        ("outside", None, None),
    ]


def test_nonces_drawn_ahead_are_fresh_hex_and_a_forked_child_draws_its_own() -> None:
    """Nonces drawn 64 at a time are 32 lower-case hex digits and never repeat, across refills;
    a child forked while some wait draws none of those its parent goes on to use."""
    import string
    import sys
    import warnings

    from bulkrt.shell.oauth1_signature import _NONCES, fresh_nonce

    drawn = [fresh_nonce() for _ in range(CASES)]
    assert len(set(drawn)) == len(drawn)
    assert all(len(n) == 32 and set(n) <= set(string.hexdigits.lower()) for n in drawn)
    if sys.platform == "win32":
        return
    if not _NONCES:
        fresh_nonce()  # some drawn ahead wait in the parent as it forks
    assert _NONCES
    read, write = os.pipe()
    with warnings.catch_warnings():  # Python 3.12 warns of a fork with threads running
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: its next nonces, to the parent
        os.close(read)
        os.write(write, "".join(fresh_nonce() for _ in range(8)).encode())
        os._exit(0)
    os.close(write)
    parents = {fresh_nonce() for _ in range(8)}
    with os.fdopen(read) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    childs = {text[i : i + 32] for i in range(0, len(text), 32)}
    assert len(childs) == 8 and not childs & parents


@pytest.mark.parametrize("seed", range(int(os.environ.get("BULKRT_PATH3_MASK_SEEDS", "30"))))
def test_the_quick_redaction_check_masks_as_the_definition_says(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over random secrets of 8 to 40 characters (sharing prefixes and overlapping, so the
    quick check's stride shrinks as shorter ones are learned, and, with the cap lowered, stops
    once too many are known) and random text made of their pieces, every masked text equals the
    slow definition with the secrets known at that moment."""
    import random

    from bulkrt import redaction
    from bulkrt.redaction import Redactor
    from tests.test_redaction import _reference_mask

    r = random.Random(SEED + seed)
    monkeypatch.setattr(redaction, "_STRIDE_SECRETS", r.choice([6, 20_000]))
    alphabet = "ab-1"
    pool = ["".join(r.choice(alphabet) for _ in range(r.randint(8, 40))) for _ in range(10)]
    pool.sort(key=len, reverse=True)  # the long ones first: the stride starts wide
    pieces = [
        *pool,
        *(p[: r.randint(1, len(p))] for p in pool),
        *(p[r.randint(0, 8) :] for p in pool),
    ]
    redactor = Redactor()
    known: set[str] = set()
    for step in range(CASES // 20):
        if step % 10 == 0 and len(known) < len(pool):
            learned = pool[len(known) : len(known) + r.randint(1, 2)]
            redactor.add(learned)
            known |= set(learned)
        # secrets and their pieces at every alignment: fillers of 0 to 9 characters between
        parts = [r.choice([*pool, *pieces]) + "x" * r.randint(0, 9) for _ in range(r.randint(0, 5))]
        text = "x" * r.randint(0, 9) + "".join(parts)
        assert redactor.mask(text) == _reference_mask(known, text), (sorted(known), text)
