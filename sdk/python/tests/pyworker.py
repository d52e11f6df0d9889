"""A Python worker process for the fault tests: python pyworker.py NAME
WORKFLOW_PREFIX. Its workflows stream numbered events; it logs to stderr."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import runnel  # noqa: E402
from runnel import Context  # noqa: E402

logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

name, prefix = sys.argv[1], sys.argv[2]
client = runnel.Runnel()


@runnel.workflow(prefix + "-stream")
class Stream:
    @runnel.step()
    def produce(self, ctx: Context) -> dict[str, int]:
        """Puts input["n"] events "0", "1", …, one every input["ms"] ms."""
        inp = ctx.workflow_input()
        for i in range(inp["n"]):
            ctx.put_stream(str(i))
            time.sleep(inp["ms"] / 1000)
        return {"n": inp["n"], "attempt": ctx.attempt}


worker = client.worker(name, slots=4)
worker.register_workflow(Stream())
worker.start()
print(f"worker {name} stopped", file=sys.stderr, flush=True)
