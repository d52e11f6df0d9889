// The example's backend: serves the chat page, starts a run per chat turn
// with the API token, and hands the page a browser token for that run.
// Chats live in memory: the run answering each chat's latest turn.
//
//   RUNNEL_TOKEN=$(cat runnel-data/admin.token) node dist/server.js
import { createServer, type IncomingMessage } from "node:http";
import { readFile } from "node:fs/promises";
import { Runnel } from "@runnel/sdk";
import type { UIMessage } from "ai";
import { WORKFLOW } from "./model.js";

const runnel = new Runnel();
const port = Number(process.env["PORT"] ?? 3000);
const page = `<!doctype html>
<meta charset="utf-8">
<title>Runnel: AI chat</title>
<link rel="icon" href="data:,">
<div id="root"></div>
<script type="module" src="/page.js"></script>`;

interface Chat {
  messages: UIMessage[]; // as of the latest turn, its user message last
  runId: string; // the run answering it
}
const chats = new Map<string, Chat>();

async function json(req: IncomingMessage): Promise<unknown> {
  let body = "";
  for await (const chunk of req) body += chunk;
  return JSON.parse(body);
}

/** A browser token for the chat's run: read-only, that run only. */
async function session(chat: Chat) {
  const { token } = await runnel.admin.createBrowserToken({ runId: chat.runId }, { ttlSeconds: 600 });
  return { runId: chat.runId, token, host: runnel.host };
}

const server = createServer(async (req, res) => {
  const send = (status: number, body: unknown) =>
    res.writeHead(status, { "Content-Type": "application/json" }).end(JSON.stringify(body));
  try {
    const url = new URL(req.url ?? "/", "http://localhost");
    const chatPath = /^\/api\/chat\/([\w-]+)$/.exec(url.pathname);
    if (req.method === "GET" && url.pathname === "/") {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" }).end(page);
    } else if (req.method === "GET" && url.pathname === "/page.js") {
      res.writeHead(200, { "Content-Type": "text/javascript" }).end(await readFile(new URL("./page.js", import.meta.url)));
    } else if (req.method === "POST" && chatPath) {
      // A new turn: the page sends the whole conversation.
      const { messages } = (await json(req)) as { messages: UIMessage[] };
      const runId = await runnel.admin.runWorkflow(WORKFLOW, { messages }, { additionalMetadata: { chatId: chatPath[1]! } });
      const chat = { messages, runId };
      chats.set(chatPath[1]!, chat);
      send(200, await session(chat));
    } else if (req.method === "GET" && chatPath) {
      // Opening a chat (after a reload, in a new tab): its messages and the
      // run of its latest turn, which the page replays from the log.
      const chat = chats.get(chatPath[1]!);
      if (!chat) send(404, { error: "no such chat" });
      else send(200, { messages: chat.messages, run: await session(chat) });
    } else {
      send(404, { error: "not found" });
    }
  } catch (err) {
    console.error(`${req.method} ${req.url}: ${String(err)}`);
    send(500, { error: String(err) });
  }
});
server.listen(port, "127.0.0.1", () => console.error(`chat at http://127.0.0.1:${port}`));
