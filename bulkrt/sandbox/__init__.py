"""A local, stateful emulator of the X API v2 endpoints bulkrt uses, over real HTTP.

The runtime never imports this package; tests, the demo and benchmarks do. It may import only
the core (the tiers it emulates).
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
