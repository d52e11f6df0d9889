// The chat page: useChat over Runnel. Each turn is a run; the answer is
// the run's stream, so a reload (or a new tab) picks it up where it is.
import { StrictMode, useEffect, useMemo, useState } from "react";
import { createRoot } from "react-dom/client";
import { useChat } from "@ai-sdk/react";
import type { UIMessage } from "ai";
import { RunnelChatTransport, type RunnelChatRun } from "@runnel/ai";

interface Saved {
  messages: UIMessage[];
  run: RunnelChatRun;
}

async function post(path: string, body: unknown): Promise<RunnelChatRun> {
  const res = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as RunnelChatRun;
}

async function load(chatId: string): Promise<Saved | null> {
  const res = await fetch(`/api/chat/${chatId}`);
  return res.ok ? ((await res.json()) as Saved) : null;
}

function Chat({ id, saved }: { id: string; saved: Saved | null }) {
  const transport = useMemo(
    () =>
      new RunnelChatTransport({
        // The backend starts the run and mints a browser token for it.
        start: ({ chatId, messages }) => post(`/api/chat/${chatId}`, { messages }),
        // After a reload or in a new tab: the chat's latest run, replayed.
        resume: async (chatId) => (await load(chatId))?.run ?? null,
      }),
    [],
  );
  const { messages, sendMessage, status, error } = useChat({ id, messages: saved?.messages ?? [], transport, resume: saved !== null });
  const [input, setInput] = useState("What should I wear in Oslo today?");
  return (
    <main style={{ fontFamily: "sans-serif", maxWidth: 720, margin: "2em auto" }}>
      <h1>Runnel chat</h1>
      {messages.map((m) => (
        <div key={m.id} className="message" data-role={m.role} style={{ margin: "1em 0", whiteSpace: "pre-wrap" }}>
          <b>{m.role === "user" ? "You: " : "Assistant: "}</b>
          <span className="content">
            {m.parts.map((p, i) => {
              if (p.type === "text") return <span key={i}>{p.text}</span>;
              if (p.type === "tool-weather") {
                const done = p.state === "output-available";
                return <code key={i}>{`[weather ${JSON.stringify(p.input)}${done ? ` → ${JSON.stringify(p.output)}` : " …"}]`}</code>;
              }
              return null;
            })}
          </span>
        </div>
      ))}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void sendMessage({ text: input });
          setInput("");
        }}
      >
        <input id="input" value={input} onChange={(e) => setInput(e.target.value)} style={{ width: "80%" }} />
        <button id="send" disabled={status === "streaming" || status === "submitted"}>Send</button>
      </form>
      <p>
        Status: <span id="status">{status}</span> {error ? <span id="error">{error.message}</span> : null}
      </p>
    </main>
  );
}

function App() {
  // The chat's id is in the URL, so a reload or a new tab opens the same chat.
  const [state, setState] = useState<{ id: string; saved: Saved | null } | undefined>();
  useEffect(() => {
    const url = new URL(location.href);
    let id = url.searchParams.get("chat");
    if (!id) {
      id = crypto.randomUUID();
      url.searchParams.set("chat", id);
      history.replaceState(null, "", url);
    }
    const chatId = id;
    void load(chatId).then((saved) => setState({ id: chatId, saved }));
  }, []);
  return state ? <Chat id={state.id} saved={state.saved} /> : <p>Loading…</p>;
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
