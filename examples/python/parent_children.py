"""A parent run spawning children, all followed by one subscription on an
additional metadata pair: the seed's "Streaming by Additional Metadata"
example. Children inherit the parent's metadata, so the one subscription
sees every run of the family, including those created after it started.

    go run ./cmd/runnel dev                         # in one terminal
    python examples/python/parent_children.py [N]   # in another
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from pathlib import Path
from typing import Any

from runnel import Context, EventType, Runnel


def connect() -> Runnel:
    token = os.environ.get("RUNNEL_TOKEN")
    dev_token = Path("runnel-data/admin.token")
    if not token and dev_token.exists():
        token = dev_token.read_text().strip()
    return Runnel(token=token)


runnel = connect()


@runnel.workflow("py-child")
class Child:
    @runnel.step()
    async def work(self, context: Context) -> dict[str, Any]:
        i = context.workflow_input()["i"]
        for part in range(3):
            await context.aio_put_stream(f"child {i}: part {part}")
            await asyncio.sleep(0.02)
        return {"child": i}


@runnel.workflow("py-parent")
class Parent:
    @runnel.step()
    async def spawn(self, context: Context) -> dict[str, Any]:
        n = context.workflow_input()["n"]
        await context.aio_put_stream(f"parent: spawning {n} children")
        children = [await context.aio_spawn_workflow("py-child", {"i": i}) for i in range(n)]
        results = [await child.aio_result() for child in children]
        return {"children": [r["work"]["child"] for r in results]}


async def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    worker = runnel.worker("py-family-example", slots=n + 2)
    worker.register_workflow(Parent())
    worker.register_workflow(Child())
    task = asyncio.create_task(worker.async_start())
    await worker.aio_wait_ready()

    # A random stream key to follow the whole family by.
    stream_key, stream_val = "streamKey", f"sk-{random.randint(1, 1_000_000)}"
    listener = runnel.listener.stream_by_additional_metadata(stream_key, stream_val)
    await runnel.admin.aio_run_workflow("py-parent", {"n": n}, additional_metadata={stream_key: stream_val})

    # A metadata subscription never ends by itself: stop once the parent
    # and its n children have ended.
    ended = 0
    async for event in listener:
        print(event.type, event.run_id[-8:], event.payload.decode() if event.payload else "")
        if event.terminal:
            ended += 1
            if ended == n + 1:
                break
    await listener.aclose()

    worker.stop()
    await task


if __name__ == "__main__":
    asyncio.run(main())
