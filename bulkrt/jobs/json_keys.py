"""JSON objects that name a key twice, which `json.loads` reads by keeping the last value.

An operator's file naming a key twice is almost always a mistake (two files merged by hand, a
field pasted twice), and the silently kept last value can be another account's credentials or
another row's account. `loads_noting_repeats` parses as `json.loads` does and says whether any
object named a key twice (a flat object holding no more colons than keys needs no more; any other
costs one small call per object); only then does
`first_repeat` find where, by a second pass over the text, so that a well-formed file pays for
no position tracking.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Repeat", "first_repeat", "loads_noting_repeats"]

#: the tokens that give JSON text its shape: strings (escapes included) and punctuation
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],]')
_SPACE = re.compile(r"\s*")


@dataclass(frozen=True)
class Repeat:
    """A key named a second time in one object: its path (``accounts.acct001``, ``[2]`` for an
    array's item) and the lines of the first and second naming (1-based)."""

    field: str
    first_line: int
    line: int


def loads_noting_repeats(text: str) -> tuple[Any, bool]:
    """The value of the JSON ``text`` (raises `json.JSONDecodeError` as `json.loads`), and
    whether an object in it names a key more than once.

    >>> loads_noting_repeats('{"a": 1, "b": {"c": 2, "c": 3}}')
    ({'a': 1, 'b': {'c': 3}}, True)
    >>> loads_noting_repeats('[{"a": 1}, {"a": 2}]')
    ([{'a': 1}, {'a': 2}], False)
    >>> loads_noting_repeats('{"a": "b:c", "a": 1}'), loads_noting_repeats('{"a": "b:c"}')
    (({'a': 1}, True), ({'a': 'b:c'}, False))
    """
    value = json.loads(text)
    if isinstance(value, dict) and text.count(":") == len(value):
        # every key named takes a colon: no more colons than distinct keys, no repeat (the
        # usual flat job row, read at the C parser's speed)
        return value, False
    repeated = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal repeated
        value = dict(items)
        if len(value) != len(items):
            repeated = True
        return value

    return json.loads(text, object_pairs_hook=pairs), repeated


def first_repeat(text: str) -> Repeat | None:
    """The first key (in the order of the text) that an object of the valid JSON ``text``
    names a second time, or None.

    >>> first_repeat('{"accounts": {\\n "a1": {"id": 1},\\n "a1": {"id": 2}}}')
    Repeat(field='accounts.a1', first_line=2, line=3)
    >>> first_repeat('[{"x": "\\\\"x\\\\":"}, {"x": 1, "y": [1, {"z": 0, "z": 1}]}]')
    Repeat(field='[1].y[1].z', first_line=1, line=1)
    >>> first_repeat('{"a": {"k": 1}, "b": {"k": 1}}') is None
    True
    """
    # each open container: its kind, and the key (object) or index (array) now being read
    stack: list[list[Any]] = []
    seen: dict[tuple[Any, ...], int] = {}
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token == "{":
            stack.append(["{", None])
        elif token == "[":
            stack.append(["[", 0])
        elif token in "}]":
            stack.pop()
        elif token == ",":
            if stack and stack[-1][0] == "[":
                stack[-1][1] += 1
        elif stack and stack[-1][0] == "{" and _followed_by_colon(text, match.end()):
            stack[-1][1] = json.loads(token)
            # the path tells objects apart (siblings in an array by index) until a key is
            # repeated, and the first repeat is found before anything under its second naming
            where = tuple((kind, at) for kind, at in stack)
            line = text.count("\n", 0, match.start()) + 1
            if where in seen:
                return Repeat(_path(stack), seen[where], line)
            seen[where] = line
    return None


def _followed_by_colon(text: str, end: int) -> bool:
    space = _SPACE.match(text, end)
    at = space.end() if space is not None else end
    return text.startswith(":", at)


def _path(stack: list[list[Any]]) -> str:
    parts: list[str] = []
    for kind, at in stack:
        if kind == "[":
            parts.append(f"[{at}]")
        else:
            parts.append(("." if parts else "") + str(at))
    return "".join(parts)
