"""A FastAPI backend that runs work in the background and streams it to a
browser: the seed's "Consuming Streams on Frontend" example on Runnel.

    go run ./cmd/runnel dev                                      # one terminal
    cd examples/python/fastapi_backend && uvicorn app:app --port 8000   # another
    open http://127.0.0.1:8000/

POST /message {"text": "..."} starts a run and answers {"messageId": RUN_ID};
GET /message/{messageId} proxies the run's events as Server-Sent Events in
the engine's own format (id: position, event: type, data: JSON), so the
browser's EventSource resumes after a dropped connection with Last-Event-ID,
and /sdk/runnel.js could read it too. The page at / shows the answer as it
streams. The backend also runs the Python worker that answers (in a real
deployment that would be a separate process).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from runnel import Context, Event, EventType, Runnel
from runnel.sse import event_data, sse_response

HERE = Path(__file__).resolve().parent


def connect() -> Runnel:
    token = os.environ.get("RUNNEL_TOKEN")
    for dev_token in (Path("runnel-data/admin.token"), HERE.parents[2] / "runnel-data" / "admin.token"):
        if not token and dev_token.exists():
            token = dev_token.read_text().strip()
    return Runnel(token=token)


runnel = connect()


@runnel.workflow("py-chat")
class Chat:
    @runnel.step()
    async def answer(self, context: Context) -> dict[str, str]:
        text = context.workflow_input()["text"]
        reply = f"You said {text!r}. Here is a reply, streamed word by word from a Python step."
        for word in reply.split(" "):
            await context.aio_put_stream(word + " ")
            await asyncio.sleep(0.05)
        return {"reply": reply}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    worker = runnel.worker("py-chat-backend", slots=8)
    worker.register_workflow(Chat())
    task = asyncio.create_task(worker.async_start())
    await worker.aio_wait_ready()
    yield
    worker.stop(cancel_running=True)
    await task


app = FastAPI()
# FastAPI(lifespan=lifespan) from FastAPI 0.93 on; this works with older too.
app.router.lifespan_context = lifespan


class MessageIn(BaseModel):
    text: str


@app.post("/message")
async def post_message(message: MessageIn) -> dict[str, str]:
    # A real app might store the run id with the message; here the message
    # id is the run id.
    run_id = await runnel.admin.aio_run_workflow("py-chat", {"text": message.text})
    return {"messageId": run_id}


def for_the_page(event: Event) -> Any:
    """The seed's event_stream_generator filter: what the page needs (the
    stream, the result, the run's end), in the engine's own data format."""
    if event.type in (EventType.STEP_STREAM, EventType.STEP_COMPLETED) or event.terminal:
        return event_data(event)
    return None


@app.get("/message/{message_id}")
async def stream_message(message_id: str, request: Request) -> Response:
    return await sse_response(runnel, message_id, request, transform=for_the_page)


@app.get("/", response_class=HTMLResponse)
async def page() -> str:
    return (HERE / "index.html").read_text()
