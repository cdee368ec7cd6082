"""A local, stateful emulator of the X API v2 endpoints bulkrt uses, over real HTTP.

The runtime never imports this package, except its pure state through `bulkrt.simulation` (the
dry run's estimate); the `demo` and `sandbox` commands, tests and benchmarks run it.
`tests/test_layering.py` checks both. It may import only the core (the tiers it emulates).
"""

from typing import TYPE_CHECKING, Any

from bulkrt.sandbox.clock import ManualClock, OffsetClock, SystemClock
from bulkrt.sandbox.config import Endpoint, FaultKind, SandboxConfig, Tier
from bulkrt.sandbox.state import SandboxState

if TYPE_CHECKING:
    from bulkrt.sandbox.server import Sandbox

__all__ = [
    "Endpoint",
    "FaultKind",
    "ManualClock",
    "OffsetClock",
    "Sandbox",
    "SandboxConfig",
    "SandboxState",
    "SystemClock",
    "Tier",
]


def __getattr__(name: str) -> Any:
    """`Sandbox` (the aiohttp server) loads on first use: the pure state needs no web server."""
    if name == "Sandbox":
        from bulkrt.sandbox.server import Sandbox

        return Sandbox
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
