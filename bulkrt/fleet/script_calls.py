"""Lua script calls sent together: one pipeline, one round trip, each call atomic on its own.

A pipeline names each script by its SHA (``EVALSHA``) without asking Redis first whether it has
it (`redis.asyncio.client.Pipeline`'s scripts would, a round trip of their own every time). A
Redis that lacks a script (a fresh server, or one that restarted) answers ``NOSCRIPT`` to every
call of it and runs none of them; `run_scripts` then loads each missing script once and sends the
refused calls again in one pipeline, rather than one round trip per call (a worker's first
window is hundreds of admissions at once: one round trip each stretched its start by a tenth of
a second and more).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

__all__ = ["ScriptCall", "run_scripts"]

#: one call: the script, its keys, its arguments
ScriptCall = tuple[AsyncScript, Sequence[str], Sequence[str | int | float]]

#: how many times refused calls are sent again after loading their scripts (Redis restarting
#: between the load and the call refuses them once more)
_LOADS = 3


async def run_scripts(redis: Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    """The answers of ``calls``, in order, each an answer or the exception its call raised
    (refused for a missing script only if Redis lost it again after it was loaded, three
    times). An error reaching Redis is raised when nothing was answered; once some calls were
    (they ran), it stands as the answer of each call sent again, so that a caller repeats only
    those."""
    answers = await _pipeline(redis, calls)
    for _ in range(_LOADS):
        missing = [n for n, answer in enumerate(answers) if isinstance(answer, NoScriptError)]
        if not missing:
            break
        try:
            for script in {calls[n][0].sha: calls[n][0] for n in missing}.values():
                await redis.script_load(script.script)
            again = await _pipeline(redis, [calls[n] for n in missing])
        except (RedisError, OSError) as exc:
            again = [exc] * len(missing)
        for n, answer in zip(missing, again, strict=True):
            answers[n] = answer
    return answers


async def _pipeline(redis: Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    async with redis.pipeline(transaction=False) as pipe:
        for script, keys, args in calls:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))
