"""Reaching a sandbox under the real API's host name: an aiohttp resolver that sends every host
to the sandbox on loopback, as a deployment's DNS would, for clients that hard-code
``https://api.twitter.com`` (tweepy) or ``https://api.x.com``."""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult

__all__ = ["LoopbackResolver"]


class LoopbackResolver(AbstractResolver):
    """Resolves every host name to 127.0.0.1 and the sandbox's port; remembers what was asked.

    >>> import aiohttp
    >>> connector = aiohttp.TCPConnector(resolver=LoopbackResolver(8443))  # doctest: +SKIP
    """

    def __init__(self, port: int) -> None:
        self.port = port
        #: the host names clients asked for, in order
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": self.port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None
