"""Running a stage's loops together: the first failure ends them all and is raised (the
runtime restarts the stage); `stop` ends them cleanly."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


async def run_together(loops: list[Coroutine[Any, Any, None]], stop: asyncio.Event) -> None:
    tasks = [asyncio.create_task(c) for c in loops]
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if t is not stopper and not t.cancelled() and t.exception():
                raise t.exception()  # type: ignore[misc]
    finally:
        stopper.cancel()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
