// A backend for a page that follows a run live. POST /start triggers a run
// with the backend's API token and mints a read-only browser token for just
// that run; the page follows it with the browser build of @runnel/sdk.
//
//   runnel dev --cors-origin http://127.0.0.1:3000
//   RUNNEL_TOKEN=$(cat runnel-data/admin.token) node dist/worker.js &
//   RUNNEL_TOKEN=$(cat runnel-data/admin.token) node dist/browser/server.js
//   open http://127.0.0.1:3000
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { Runnel } from "@runnel/sdk";
import { WORKFLOW } from "../text.js";

const runnel = new Runnel();
const page = fileURLToPath(new URL("../../browser/index.html", import.meta.url));
const bundle = fileURLToPath(import.meta.resolve("@runnel/sdk/runnel.browser.js"));
const port = Number(process.env["PORT"] ?? 3000);

const server = createServer(async (req, res) => {
  try {
    if (req.method === "GET" && (req.url === "/" || req.url?.startsWith("/?"))) {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" }).end(await readFile(page));
    } else if (req.method === "GET" && req.url === "/runnel.js") {
      res.writeHead(200, { "Content-Type": "text/javascript" }).end(await readFile(bundle));
    } else if (req.method === "POST" && req.url === "/start") {
      const runId = await runnel.admin.runWorkflow(WORKFLOW, { delayMs: 30 });
      const { token } = await runnel.admin.createBrowserToken({ runId }, { ttlSeconds: 600 });
      res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify({ runId, token, host: runnel.host }));
    } else {
      res.writeHead(404).end();
    }
  } catch (err) {
    res.writeHead(500, { "Content-Type": "text/plain" }).end(String(err));
  }
});
server.listen(port, "127.0.0.1", () => console.error(`page at http://127.0.0.1:${port}`));
