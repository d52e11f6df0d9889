"""Text streamed from a step and printed by a listener, chunk by chunk, as
the step produces it: the seed's "Listeners" and "Streaming from a Step
Context" examples on Runnel.

    go run ./cmd/runnel dev                     # in one terminal
    python examples/python/text_stream.py       # in another

The script runs its own worker (in the background of the same process),
triggers a run and follows it with ``async for``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from runnel import Context, EventType, Runnel


def connect() -> Runnel:
    """RUNNEL_HOST and RUNNEL_TOKEN, or, next to a `runnel dev` started in
    the repository root, its admin token."""
    token = os.environ.get("RUNNEL_TOKEN")
    dev_token = Path("runnel-data/admin.token")
    if not token and dev_token.exists():
        token = dev_token.read_text().strip()
    return Runnel(token=token)


runnel = connect()

WORDS = "Runnel streams every token from a Python step to every listener, in order, exactly once.".split()


@runnel.workflow("py-text-stream")
class TextStream:
    @runnel.step()
    def generate(self, context: Context) -> dict[str, int]:
        # A plain def step runs in the worker's thread pool.
        chunks = int(context.workflow_input().get("chunks", len(WORDS)))
        for i in range(chunks):
            context.put_stream(WORDS[i % len(WORDS)] + " ")
            time.sleep(0.03)  # an LLM would be thinking here
        return {"chunks": chunks}


async def main() -> None:
    worker = runnel.worker("py-text-example", slots=4)
    worker.register_workflow(TextStream())
    task = asyncio.create_task(worker.async_start())
    await worker.aio_wait_ready()

    run_id = await runnel.admin.aio_run_workflow("py-text-stream", {"chunks": len(WORDS)})
    print(f"run {run_id}", file=sys.stderr)
    async for event in runnel.listener.stream(run_id):
        if event.type == EventType.STEP_STREAM:
            print(event.text, end="", flush=True)
        elif event.terminal:
            print(f"\n[{event.type}]", file=sys.stderr)

    worker.stop()
    await task


if __name__ == "__main__":
    asyncio.run(main())
