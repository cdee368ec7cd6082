"""Running a sandbox: bind a port (0 picks a free one), serve HTTP or HTTPS, close idempotently.

>>> import asyncio
>>> async def main() -> int:
...     async with Sandbox(SandboxConfig(users=2)) as sandbox:
...         return len(sandbox.state.world.users)
>>> asyncio.run(main())
2
"""

from __future__ import annotations

import ssl
from types import TracebackType

from aiohttp import web

from bulkrt.sandbox.app import make_app
from bulkrt.sandbox.clock import Clock, OffsetClock
from bulkrt.sandbox.config import SandboxConfig
from bulkrt.sandbox.state import SandboxState

__all__ = ["Sandbox"]


class Sandbox:
    """A sandbox served on a real socket, as an async context manager.

    ``clock`` defaults to an `OffsetClock`, so ``POST /__sandbox/clock`` can jump time ahead.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config or SandboxConfig()
        self.clock: Clock = clock or OffsetClock()
        self.state = SandboxState(self.config, self.clock.now())
        self.host = host
        self.port = port
        self._ssl = ssl_context
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The base URL to give a client, e.g. ``http://127.0.0.1:40123``."""
        scheme = "https" if self._ssl else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    async def start(self) -> None:
        app = make_app(self.state, self.clock)
        # Stalled handlers must not hold a shutdown for long.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self._ssl)
        await site.start()
        address = self._runner.addresses[0]
        self.port = int(address[1])

    async def close(self) -> None:
        """Stop serving; calling it again does nothing."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
