"""Item keys (CONTRACT "Item identity and resume"), counted without holding every row in memory.

A row's key is its ``id`` when it has one. Otherwise it is the JSON array text
``["<campaign>","<account>","<action>","<tweet_id>",<n>]`` (compact separators, UTF-8, no ASCII
escaping), where ``n`` counts the earlier rows of the same invocation (all job files given, in
order) with the same four values. JSON string escaping makes this unambiguous, and since an
operator's ``id`` may not start with ``[``, a derived key never equals an operator's id.

Counting ``n`` exactly for a million rows would take a million-entry dict. Instead the first
pass (validation) keeps only one 64-bit hash per row in an ``array('q')`` (8 bytes a row), and
`RepeatFinder.repeated` sorts it once to find the hashes seen more than once. A later pass
counts exactly, in a dict, only the rows whose hash is among those: usually none. A hash
collision only makes a few more rows counted exactly; it never changes a key. Hashes are
Python's ``hash()``, salted per process, so both passes must run in the same process.

>>> finder = RepeatFinder()
>>> for identity in [("a",), ("b",), ("a",)]:
...     finder.add(identity)
>>> counter = KeyCounter(finder.repeated())
>>> counter.number(("a",)), counter.number(("b",)), counter.number(("a",))
(0, 0, 1)
"""

from __future__ import annotations

import json
from array import array

from bulkrt.rows import Row

__all__ = ["KeyCounter", "RepeatFinder", "derived_key", "item_key"]


def derived_key(campaign: str, account: str, action: str, tweet_id: str, n: int) -> str:
    """The key of a row without an ``id``: the JSON array text of its four values and ``n``."""
    return json.dumps(
        [campaign, account, action, tweet_id, n], ensure_ascii=False, separators=(",", ":")
    )


def item_key(row: Row, n: int) -> str:
    """The key of ``row`` when ``n`` earlier rows had its four values (``n`` unused with an id)."""
    if row.id is not None:
        return row.id
    return derived_key(row.campaign, row.account, row.action.value, row.tweet_id, n)


class RepeatFinder:
    """Collects one hash per row identity and tells which identities may occur more than once."""

    __slots__ = ("_hashes",)

    def __init__(self) -> None:
        self._hashes = array("q")

    def add(self, identity: tuple[str, ...]) -> None:
        """Note one row with this identity (see `Row.identity`)."""
        self._hashes.append(hash(identity))

    def add_hash(self, value: int) -> None:
        """Note one occurrence of something already hashed (a ledger key, for instance)."""
        self._hashes.append(value)

    def repeated(self) -> frozenset[int]:
        """The hashes added more than once (sorting needs a brief, transient list of the hashes)."""
        ordered = sorted(self._hashes)
        repeats = {a for a, b in zip(ordered, ordered[1:], strict=False) if a == b}
        return frozenset(repeats)


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
