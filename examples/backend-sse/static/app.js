"use strict";

// The page: start a message with POST /message, then follow it with the
// browser's EventSource on /message/{id}. EventSource reconnects by itself
// when the connection drops and sends the id of the last message it got as
// Last-Event-ID, so the backend resumes right after it: every chunk is
// shown exactly once, in order.

const $ = (id) => document.getElementById(id);
const output = $("output");
const statusEl = $("status");
let source = null;

function setStatus(text) {
  statusEl.textContent = text;
}

// decodePayload returns a step.stream event's payload as text: the server
// sends text as is and anything else as base64.
function decodePayload(data) {
  if (data.encoding !== "base64") {
    return data.payload;
  }
  const bytes = Uint8Array.from(atob(data.payload), (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

function follow(messageId) {
  let connections = 0;
  let outcome = "ended";
  const es = new EventSource("message/" + encodeURIComponent(messageId));
  source = es;

  es.onopen = () => {
    connections++;
    $("connections").textContent = String(connections);
    setStatus("streaming");
  };
  es.addEventListener("step.stream", (e) => {
    output.textContent += decodePayload(JSON.parse(e.data));
  });
  for (const type of ["run.completed", "run.failed", "run.cancelled", "run.timed_out"]) {
    es.addEventListener(type, (e) => {
      const data = JSON.parse(e.data);
      outcome = type.slice("run.".length);
      if (data.error) {
        outcome += ": " + data.error;
      }
    });
  }
  // The run is over and every event arrived: close, or EventSource would
  // reconnect and be told so again.
  es.addEventListener("end", () => {
    es.close();
    source = null;
    setStatus(outcome);
    $("done").hidden = false;
    $("start").disabled = false;
  });
  es.onerror = () => {
    if (es.readyState === EventSource.CONNECTING) {
      // A dropped connection: EventSource is already reconnecting.
      setStatus("reconnecting…");
    } else {
      // The server refused the stream (unknown message, engine down).
      setStatus("stream failed");
      source = null;
      $("start").disabled = false;
    }
  };
}

$("form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (source) {
    source.close();
    source = null;
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
