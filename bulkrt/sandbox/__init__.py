"""A local, stateful emulator of the X API v2 endpoints bulkrt uses, over real HTTP.

The runtime never imports this package (only the `demo` and `sandbox` commands do, and tests and
benchmarks); `tests/test_layering.py` checks that importing every other module loads none of
it. It may import only the core (the tiers it emulates).
"""

from bulkrt.sandbox.clock import ManualClock, OffsetClock, SystemClock
from bulkrt.sandbox.config import Endpoint, FaultKind, SandboxConfig, Tier
from bulkrt.sandbox.server import Sandbox
from bulkrt.sandbox.state import SandboxState

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
