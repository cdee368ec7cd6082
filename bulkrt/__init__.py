"""bulkrt: retweet and undo-retweet jobs on the X API v2 across many accounts, within the limits."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bulkrt")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
