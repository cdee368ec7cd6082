"""bulkrt: retweet and undo-retweet jobs on the X API v2 across many accounts, within the limits.

The package is in wings, each a folder whose ``__init__`` says what lives there and what it may
import, in one direction: the pure core (`bulkrt.core`), the job files (`bulkrt.jobs`), the ledger
(`bulkrt.ledger`), the async shell (`bulkrt.shell`), the report (`bulkrt.reporting`), the commands
(`bulkrt.commands`, reached only through `bulkrt.cli`), and the API sandbox (`bulkrt.sandbox`,
which the runtime never loads). Beside them is the foundation every wing may use: `errors` (every
exception), `exitcodes`, `redaction` (secret masking), `atomic` (crash-safe file replacement) and
`logs`; of these, `errors` imports only `redaction`, `logs` only `redaction`, and the rest nothing
of bulkrt. `tests/test_layering.py` holds the rules (``MAY_IMPORT``) and checks them.

``__version__`` is read from the installed package's metadata on first use, not on import:
`importlib.metadata` takes longer to load than the rest of `bulkrt --help`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["__version__"]

if TYPE_CHECKING:
    __version__: str


def __getattr__(name: str) -> str:
    """``bulkrt.__version__``, looked up once, when first asked for."""
    if name != "__version__":
        raise AttributeError(f"module 'bulkrt' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("bulkrt")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        found = "0.0.0"
    globals()["__version__"] = found
    return found
