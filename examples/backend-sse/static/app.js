// The page: start a message with POST /message, then follow it on
// /message/{id} with Runnel's browser client. The backend re-serves the
// client from the engine (/sdk/runnel.js) at /runnel.js, and streams the
// run with the Go sse package, whose frames are the engine's, so the client
// takes the stream's URL. EventSource reconnects by itself when the
// connection drops and sends the id of the last message it got as
// Last-Event-ID, so the backend resumes right after it: every chunk is
// shown exactly once, in order.

import { subscribe } from "./runnel.js";

const $ = (id) => document.getElementById(id);
const output = $("output");
let sub = null;

function setStatus(text) {
  $("status").textContent = text;
}

function follow(messageId) {
  let connections = 0;
  let outcome = "ended";
  sub = subscribe({ url: "message/" + encodeURIComponent(messageId) }, {
    onEvent(ev) {
      if (ev.type === "step.stream") {
        // Text arrives as a string; anything else as bytes.
        output.textContent += typeof ev.payload === "string" ? ev.payload : new TextDecoder().decode(ev.payload);
      } else if (ev.type.startsWith("run.")) {
        outcome = ev.type.slice("run.".length) + (ev.error ? ": " + ev.error : "");
      }
    },
    onStatus(status, detail) {
      switch (status) {
        case "live":
          connections++;
          $("connections").textContent = String(connections);
          setStatus("streaming");
          break;
        case "reconnecting":
          setStatus("reconnecting…");
          break;
        case "ended": // the run is over and every event arrived
          sub = null;
          setStatus(outcome);
          $("done").hidden = false;
          $("start").disabled = false;
          break;
        case "error": // refused for good (unknown message, …)
          sub = null;
          setStatus("stream failed: " + detail.message);
          $("start").disabled = false;
          break;
      }
    },
  });
}

$("form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (sub) {
    sub.close();
    sub = null;
  }
  $("start").disabled = true;
  $("done").hidden = true;
  output.textContent = "";
  setStatus("starting…");
  const input = {
    chunks: Number($("chunks").value),
    intervalMs: Number($("interval").value),
  };
  try {
    const res = await fetch("message", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(input),
    });
    const body = await res.json();
    if (!res.ok) {
      throw new Error(body.error ? body.error.message : "HTTP " + res.status);
    }
    $("message-id").textContent = body.messageId;
    setStatus("connecting…");
    follow(body.messageId);
  } catch (err) {
    setStatus("could not start: " + err.message);
    $("start").disabled = false;
  }
});
