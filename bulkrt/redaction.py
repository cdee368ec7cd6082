"""Finding and masking known secret values in text, in time linear in the text and in the number
of secrets, whatever prefixes the secrets share (OAuth 1.0a access tokens begin with the user id,
and ids made near each other share their leading digits).

The search is Aho-Corasick (pyahocorasick). Secrets arrive during a run too (every rotated token
is masked from the moment it exists), and an automaton cannot grow once built, so the secrets are
kept in levels of doubling size, like a binary counter: a new secret makes a level of its own and
equal-sized levels merge, so each secret is rebuilt into an automaton O(log n) times in all and a
text is scanned once per level. Values shorter than `MIN_LENGTH` are not treated as secrets: they
would mask ordinary words.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import ahocorasick

__all__ = ["MASK", "MIN_LENGTH", "SHOWN_MAX", "Redactor", "shown"]

MASK = "[redacted]"
#: the shortest value treated as a secret
MIN_LENGTH = 8
#: the longest input value an error message quotes; a longer one could be a secret (an accounts
#: file passed where a job or Tweet list is expected), so only its length is given
SHOWN_MAX = 20


def shown(value: str) -> str:
    """``value`` as an input error may show it: quoted when short, else only its length.

    >>> shown("abc"), shown("1036518367961303124-TVXpxJ9uvdhjt00tjfI2bebuROrNCH")
    ("'abc'", 'a 50-character value (not shown: it could hold a secret)')
    """
    if len(value) <= SHOWN_MAX:
        return repr(value)
    return f"a {len(value)}-character value (not shown: it could hold a secret)"


class _Level:
    """Some secrets and the automaton that finds them."""

    __slots__ = ("automaton", "secrets")

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = secrets
        self.automaton = ahocorasick.Automaton()
        for secret in secrets:
            self.automaton.add_word(secret, len(secret))
        self.automaton.make_automaton()


class Redactor:
    """Knows a set of secrets and masks them wherever they appear.

    >>> r = Redactor(["tok-0123456789"])
    >>> r.mask('token "tok-0123456789" refused'), r.holds("nothing here")
    ('token "[redacted]" refused', False)
    """

    __slots__ = ("_adding", "_known", "_levels")

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        #: one `add` at a time (threads may learn secrets concurrently)
        self._adding = threading.Lock()
        self._known: set[str] = set()
        #: largest first; each at least twice the size of the next
        self._levels: list[_Level] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str | None]) -> None:
        """Learn more secrets (``None``, empty and short values are ignored)."""
        with self._adding:
            self._add(secrets)

    def _add(self, secrets: Iterable[str | None]) -> None:
        batch: list[str] = []
        for secret in secrets:
            if secret and len(secret) >= MIN_LENGTH and secret not in self._known:
                self._known.add(secret)
                batch.append(secret)
        if not batch:
            return
        # Built aside and swapped in whole: a mask running in another thread meanwhile (the
        # accounts file is read in worker threads) still sees every secret known before.
        levels = list(self._levels)
        while levels and len(levels[-1].secrets) <= len(batch):
            batch = levels.pop().secrets + batch
        levels.append(_Level(batch))
        self._levels = levels

    def __bool__(self) -> bool:
        return bool(self._levels)

    def __len__(self) -> int:
        return len(self._known)

    def holds(self, text: str) -> bool:
        """Whether ``text`` contains a known secret."""
        levels = self._levels
        if len(text) < MIN_LENGTH:
            return False
        return any(next(level.automaton.iter(text), None) is not None for level in levels)

    def mask(self, text: str) -> str:
        """``text`` with every known secret replaced by `MASK` (leftmost first, longest wins)."""
        levels = self._levels
        if len(text) < MIN_LENGTH or not levels:
            return text
        # the longest secret starting at each position where one starts
        longest: dict[int, int] = {}
        for level in levels:
            for end, length in level.automaton.iter(text):
                start = end - length + 1
                if length > longest.get(start, 0):
                    longest[start] = length
        if not longest:
            return text
        out: list[str] = []
        done = 0
        for start in sorted(longest):
            if start < done:
                continue
            out += [text[done:start], MASK]
            done = start + longest[start]
        out.append(text[done:])
        return "".join(out)
