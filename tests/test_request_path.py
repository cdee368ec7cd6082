"""The request path's fast encodings and shortcuts say exactly what the plain ones said: ledger and
journal lines byte for byte as ``json.dumps`` wrote them, each account's retweets at its own URL
with the same JSON body, and a dropped retweet never resent by aiohttp.

Randomized over ``BULKRT_LINE_CASES`` cases (2000 by default) from ``BULKRT_LINE_SEED`` (0)."""

from __future__ import annotations

import json
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bulkrt.commands.sandbox import write_accounts_file
from bulkrt.core.items import Action, ErrorDetail, Item, Status
from bulkrt.core.outcome import FailureKind
from bulkrt.ledger.journal import JournalEvent, SentJournal, journal_line
from bulkrt.ledger.record import LedgerRecord
from bulkrt.sandbox import FaultKind, OffsetClock, Sandbox, SandboxConfig
from bulkrt.sandbox.faults import ScriptedFault
from bulkrt.shell.accounts import load_accounts
from bulkrt.shell.client import XClient
from bulkrt.shell.credentials import OAuth1Signer

CASES = int(os.environ.get("BULKRT_LINE_CASES", "2000"))
SEED = int(os.environ.get("BULKRT_LINE_SEED", "0"))

#: what JSON escapes (controls, quote, backslash), what it must not (DEL, U+2028, non-ASCII,
#: astral), and plain text
_ALPHABET = [chr(c) for c in range(0x20)] + list('"\\/ aZ09-_:.,{}[]') + [
    "\x7f", "\x85", "\u00a0", "\u2028", "\u2029", "\ufeff", "é", "日", "\U0001f600",
]  # fmt: skip


def _text(rng: random.Random, most: int = 12) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, most)))


def _record(rng: random.Random) -> LedgerRecord:
    error = None
    if rng.random() < 0.5:
        error = ErrorDetail(
            _text(rng),
            rng.choice([None, _text(rng)]),
            rng.choice([None, _text(rng, 40)]),
        )
    return LedgerRecord(
        ts=_text(rng),
        run=_text(rng),
        key=_text(rng),
        campaign=_text(rng),
        account=_text(rng),
        user_id=str(rng.randint(0, 2**63)),
        tweet_id=str(rng.randint(0, 2**63)),
        action=rng.choice(list(Action)),
        status=rng.choice(list(Status)),
        retweeted=rng.choice([True, False, None]),
        preexisting=rng.choice([True, False, None]),
        http=rng.choice([None, 200, 429, 503]),
        error=error,
        attempts=rng.randint(0, 10**6),
        sent=rng.choice([None, _text(rng)]),
    )


def _reference(record: LedgerRecord) -> bytes:
    """The line as the writer wrote it with ``json.dumps``: fields in the README's order."""
    error = record.error
    doc: dict[str, object] = {
        "schema": record.schema,
        "ts": record.ts,
        "run": record.run,
        "key": record.key,
        "campaign": record.campaign,
        "account": record.account,
        "user_id": record.user_id,
        "tweet_id": record.tweet_id,
        "action": record.action.value,
        "status": record.status.value,
        "retweeted": record.retweeted,
        "preexisting": record.preexisting,
        "http": record.http,
        "error": None
        if error is None
        else {"type": error.type, "title": error.title, "detail": error.detail},
        "attempts": record.attempts,
    }
    if record.sent is not None:
        doc["sent"] = record.sent
    return (json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def test_ledger_lines_are_json_dumps_byte_for_byte() -> None:
    """Every randomized record's line is the bytes ``json.dumps`` gave, and reads back as it."""
    rng = random.Random(SEED)
    for _ in range(CASES):
        record = _record(rng)
        line = record.to_line()
        assert line == _reference(record), record
        assert record.to_json() == line[:-1].decode()
        assert LedgerRecord.from_json(line[:-1]) == record


def _item(rng: random.Random, key: str | None = None) -> Item:
    return Item(
        key if key is not None else _text(rng),
        _text(rng),
        _text(rng),
        str(rng.randint(0, 2**63)),
        rng.choice(list(Action)),
        "job.csv",
        rng.randint(2, 100),
    )


def _journal_reference(item: Item, event: JournalEvent) -> str:
    doc = {
        "e": event.value,
        "key": item.key,
        "campaign": item.campaign,
        "account": item.account,
        "tweet_id": item.tweet_id,
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def test_journal_lines_are_json_dumps_byte_for_byte(tmp_path: Path) -> None:
    """Every randomized journal line, as returned and as written to the file, is what
    ``json.dumps`` gave; a key with a lone surrogate (which orjson refuses) too."""
    rng = random.Random(SEED + 1)
    cases = [(_item(rng), rng.choice(list(JournalEvent))) for _ in range(CASES)]
    cases.append((_item(rng, key="k\ud800"), JournalEvent.SENT))
    journal = SentJournal(tmp_path / "l.jsonl")
    journal.open(finished=set())
    for item, event in cases:
        assert journal_line(item, event) == _journal_reference(item, event)
        journal.record(item, event)
    journal.close()
    written = journal.path.read_bytes()
    expected = "".join(_journal_reference(i, e) + "\n" for i, e in cases)
    assert written == expected.encode("utf-8", "surrogatepass")


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxConfig(users=4), clock=OffsetClock()) as sb:
        yield sb


async def test_each_account_retweets_at_its_own_url(sandbox: Sandbox, tmp_path: Path) -> None:
    """Retweets of two OAuth 1.0a accounts, interleaved on one client, each land on their own
    account in the sandbox with the Tweet of the JSON body, and each is accepted."""
    path = tmp_path / "accounts.json"
    write_accounts_file(path, sandbox.state.world.accounts_file(expires_at=sandbox.clock.now()))
    accounts = load_accounts(path)
    oauth1 = [accounts[name] for name in ("acct001", "acct003")]
    async with XClient(sandbox.url) as client:
        for tweet in ("20", "21", "22"):
            for account in oauth1:
                assert account.oauth1 is not None
                signer = OAuth1Signer(account.oauth1)
                exchange = await client.retweet(signer, account.user_id, tweet + account.name[-1])
                assert exchange.http == 200, exchange.body
                assert exchange.json() == {"data": {"retweeted": True}}
    for account in oauth1:
        expected = {t + account.name[-1] for t in ("20", "21", "22")}
        assert sandbox.state.retweets[account.user_id] == expected


async def test_a_dropped_retweet_is_not_resent(sandbox: Sandbox, tmp_path: Path) -> None:
    """After a reset once the retweet took effect, the client reports a network failure and
    exactly one request reached the API (a POST goes without the resend-refusing middleware:
    aiohttp resends only what it takes for idempotent)."""
    path = tmp_path / "accounts.json"
    write_accounts_file(path, sandbox.state.world.accounts_file(expires_at=sandbox.clock.now()))
    account = load_accounts(path)["acct001"]
    assert account.oauth1 is not None
    sandbox.state.faults.script(ScriptedFault(FaultKind.RESET_AFTER))
    async with XClient(sandbox.url) as client:
        exchange = await client.retweet(OAuth1Signer(account.oauth1), account.user_id, "20")
    assert exchange.http is None
    assert exchange.failure is not None and exchange.failure.kind is FailureKind.NETWORK
    assert sandbox.state.stats()["requests"] == 1
    assert sandbox.state.retweets[account.user_id] == {"20"}
