"""The redactor that keeps secrets out of logs and the ledger: exact, longest-first, and fast
however many secrets an accounts file holds."""

from __future__ import annotations

import pytest

from bulkrt.redaction import MASK, Redactor


@pytest.mark.parametrize(
    ("secrets", "text", "masked"),
    [
        (["abcdefgh12"], "abcdefgh12", MASK),
        (["abcdefgh12"], "x abcdefgh12 y abcdefgh12", f"x {MASK} y {MASK}"),
        (["abcdefgh12"], "abcdefgh1", "abcdefgh1"),  # a prefix of a secret is not the secret
        (["abcdefgh", "abcdefgh-long"], "[abcdefgh-long]", f"[{MASK}]"),  # the longest wins
        (["short"], "short", "short"),  # under 8 characters: not treated as a secret
        ([None, ""], "anything", "anything"),
        (["ééééééééé"], "<ééééééééé>", f"<{MASK}>"),
    ],
)
def test_masking(secrets: list[str | None], text: str, masked: str) -> None:
    """Every occurrence of a known secret is masked, and nothing else."""
    redactor = Redactor(secrets)
    assert redactor.mask(text) == masked
    assert redactor.holds(text) is (masked != text)


def test_thirty_thousand_secrets_are_matched_exactly() -> None:
    """With 30,000 secrets indexed, each is still found, and a near miss is not."""
    secrets = [f"tok{n:07d}-{n * 7919 % 100000:05d}" for n in range(30_000)]
    redactor = Redactor(secrets)
    assert all(redactor.holds(f"detail {s}.") for s in secrets[::997])
    assert not redactor.holds("detail tok0000001-99999.")
