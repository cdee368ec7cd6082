"""Finding and masking known secret values in text, in time linear in the text and independent
of how many secrets there are (an accounts file of 10,000 accounts holds some 30,000).

Every secret of at least `MIN_LENGTH` characters is indexed by its first `MIN_LENGTH`
characters; a text is scanned once, looking each of its windows of that length up in the index.
Shorter values are not treated as secrets: they would mask ordinary words.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["MASK", "MIN_LENGTH", "Redactor"]

MASK = "[redacted]"
#: the shortest value treated as a secret
MIN_LENGTH = 8


class Redactor:
    """Knows a set of secrets and masks them wherever they appear.

    >>> r = Redactor(["tok-0123456789"])
    >>> r.mask('token "tok-0123456789" refused'), r.holds("nothing here")
    ('token "[redacted]" refused', False)
    """

    __slots__ = ("_index",)

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        #: first MIN_LENGTH characters -> the secrets that start so, longest first
        self._index: dict[str, list[str]] = {}
        self.add(secrets)

    def add(self, secrets: Iterable[str | None]) -> None:
        """Learn more secrets (``None``, empty and short values are ignored)."""
        for secret in secrets:
            if secret and len(secret) >= MIN_LENGTH:
                bucket = self._index.setdefault(secret[:MIN_LENGTH], [])
                if secret not in bucket:
                    bucket.append(secret)
                    bucket.sort(key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._index)

    def holds(self, text: str) -> bool:
        """Whether ``text`` contains a known secret."""
        index = self._index
        if not index or len(text) < MIN_LENGTH:
            return False
        for i in range(len(text) - MIN_LENGTH + 1):
            bucket = index.get(text[i : i + MIN_LENGTH])
            if bucket is not None and any(text.startswith(s, i) for s in bucket):
                return True
        return False

    def mask(self, text: str) -> str:
        """``text`` with every known secret replaced by `MASK` (the longest match wins)."""
        if not self.holds(text):
            return text
        out: list[str] = []
        i = start = 0
        while i <= len(text) - MIN_LENGTH:
            bucket = self._index.get(text[i : i + MIN_LENGTH])
            found = next((s for s in bucket if text.startswith(s, i)), None) if bucket else None
            if found is None:
                i += 1
                continue
            out += [text[start:i], MASK]
            i = start = i + len(found)
        out.append(text[start:])
        return "".join(out)
