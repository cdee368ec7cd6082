"""Item keys (README "Job files": an item's key), counted without holding every row in memory.

A row's key is its ``id`` when it has one. Otherwise it is the JSON array text
``["<campaign>","<account>","<action>","<tweet_id>",<n>]`` (compact separators, UTF-8, no ASCII
escaping), where ``n`` counts the earlier rows of the same invocation (all job files given, in
order) with the same four values. JSON string escaping makes this unambiguous, and since an
operator's ``id`` may not start with ``[``, a derived key never equals an operator's id.

Counting ``n`` exactly for a million rows would take a million-entry dict. Instead the first
pass (validation) sets one bit per row in a fixed 16 MB bitmap indexed by the row identity's
hash; a row whose bit was already set may repeat an earlier one, and its 64-bit hash is kept.
A later pass counts exactly, in a dict, only the rows whose hash was kept: the true repeats
plus a few false alarms (about 0.75% of rows at a million, 7% at ten million), which are
counted exactly too, so no key is ever wrong. Hashes are Python's ``hash()``, salted per
process, so both passes must run in the same process.

>>> finder = RepeatFinder()
>>> for identity in [("a",), ("b",), ("a",)]:
...     finder.add(identity)
>>> counter = KeyCounter(finder.repeated())
>>> counter.number(("a",)), counter.number(("b",)), counter.number(("a",))
(0, 0, 1)
"""

from __future__ import annotations

import json
import re

from bulkrt.jobs.rows import Row

__all__ = ["KeyCounter", "RepeatFinder", "derived_key", "item_key"]


#: ``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``, made once (not per key)
_compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


#: what JSON escapes in a string when it may write any other character as it is
_ESCAPED = re.compile('["\\\\\x00-\x1f]')


def derived_key(campaign: str, account: str, action: str, tweet_id: str, n: int) -> str:
    """The key of a row without an ``id``: the JSON array text of its four values and ``n``.

    >>> derived_key("spring", "acme", "retweet", "20", 0)
    '["spring","acme","retweet","20",0]'
    """
    if _ESCAPED.search(f"{campaign}{account}{action}{tweet_id}") is None:
        return f'["{campaign}","{account}","{action}","{tweet_id}",{int(n)}]'  # nothing to escape
    return _compact_json([campaign, account, action, tweet_id, n])


def item_key(row: Row, n: int) -> str:
    """The key of ``row`` when ``n`` earlier rows had its four values (``n`` unused with an id)."""
    if row.id is not None:
        return row.id
    return derived_key(row.campaign, row.account, row.action.value, row.tweet_id, n)


class RepeatFinder:
    """Notes row identities and tells which may occur more than once, in fixed memory."""

    __slots__ = ("_bits", "_maybe")

    #: bitmap size, in bits (a power of two): 2**27 bits are 16 MB
    BITS = 2**27

    def __init__(self) -> None:
        self._bits = bytearray(self.BITS // 8)
        self._maybe: set[int] = set()

    def add(self, identity: tuple[str, ...]) -> None:
        """Note one row with this identity (see `Row.identity`)."""
        self.add_hash(hash(identity))

    def add_hash(self, value: int) -> None:
        """Note one occurrence of something already hashed (a ledger key, for instance)."""
        slot = value & (self.BITS - 1)
        mask = 1 << (slot & 7)
        if self._bits[slot >> 3] & mask:
            self._maybe.add(value)
        else:
            self._bits[slot >> 3] |= mask

    def repeated(self) -> frozenset[int]:
        """Hashes that may occur more than once; a hash not in it was added exactly once."""
        return frozenset(self._maybe)


class KeyCounter:
    """Numbers rows with the same identity 0, 1, 2, ... in the order they are met.

    Only identities whose hash is in ``repeated`` (from `RepeatFinder.repeated`) are counted;
    every other identity is known to occur once, so its number is 0.
    """

    __slots__ = ("_counts", "_repeated")

    def __init__(self, repeated: frozenset[int]) -> None:
        self._repeated = repeated
        self._counts: dict[tuple[str, ...], int] = {}

    def number(self, identity: tuple[str, ...]) -> int:
        """How many earlier rows had this identity; counts this one."""
        if hash(identity) not in self._repeated:
            return 0
        n = self._counts.get(identity, 0)
        self._counts[identity] = n + 1
        return n
