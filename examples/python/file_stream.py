"""A binary file streamed from a step and written to out/ by the listener,
byte for byte: the seed's "Streaming Files" example, without base64 (a
stream payload is bytes, up to 4 MiB).

    go run ./cmd/runnel dev                                  # in one terminal
    python examples/python/file_stream.py [FILE] [--out DIR]  # in another

FILE defaults to image.png next to this script; the copy goes to
out/payload<ext> next to it (or to DIR).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from runnel import Context, EventType, Runnel

HERE = Path(__file__).resolve().parent


def connect() -> Runnel:
    token = os.environ.get("RUNNEL_TOKEN")
    dev_token = Path("runnel-data/admin.token")
    if not token and dev_token.exists():
        token = dev_token.read_text().strip()
    return Runnel(token=token)


runnel = connect()


@runnel.workflow("py-file-stream")
class FileStream:
    @runnel.step()
    def step1(self, context: Context) -> dict[str, int]:
        path = Path(context.workflow_input()["path"])
        data = path.read_bytes()
        context.put_stream(data)  # the bytes themselves: no base64
        return {"bytes": len(data)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", default=str(HERE / "image.png"))
    parser.add_argument("--out", default=str(HERE / "out"))
    args = parser.parse_args()
    source = Path(args.file).resolve()

    worker = runnel.worker("py-file-example", slots=2)
    worker.register_workflow(FileStream())
    task = asyncio.create_task(worker.async_start())
    await worker.aio_wait_ready()

    run_id = await runnel.admin.aio_run_workflow("py-file-stream", {"path": str(source)})
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    async for event in runnel.listener.stream(run_id):
        if event.type == EventType.STEP_STREAM:
            payload_path = out_dir / ("payload" + source.suffix)
            payload_path.write_bytes(event.payload)
            print(f"wrote {len(event.payload)} bytes to {payload_path}")
        elif event.terminal:
            print(f"[{event.type}]", file=sys.stderr)

    worker.stop()
    await task


if __name__ == "__main__":
    asyncio.run(main())
