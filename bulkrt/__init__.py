"""bulkrt: retweet and undo-retweet jobs on the X API v2 across many accounts, within the limits.

The package is in wings, each a folder whose ``__init__`` says what lives there and what it may
import, in one direction: the pure core (`bulkrt.core`), the job files (`bulkrt.jobs`), the ledger
(`bulkrt.ledger`), the async shell (`bulkrt.shell`), the report (`bulkrt.reporting`), the commands
(`bulkrt.commands`, reached only through `bulkrt.cli`), and the API sandbox (`bulkrt.sandbox`,
which the runtime never loads). Beside them is the foundation every wing may use: `errors` (every
exception), `exitcodes`, `redaction` (secret masking), `atomic` (crash-safe file replacement) and
`logs`; of these, `errors` imports only `redaction`, `logs` only `redaction`, and the rest nothing
of bulkrt. `tests/test_layering.py` holds the rules (``MAY_IMPORT``) and checks them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bulkrt")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
