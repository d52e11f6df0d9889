// Server rendering: the hooks render their empty state, touch no browser
// globals and open nothing (effects do not run on a server).
// Run by sdk/typescript/aichat_test.go (TestAIChat/ReactHooksSSR).
import { createElement } from "react";
import { renderToString } from "react-dom/server";
import { useMetadataStream, useRun, useRunStream } from "@runnel/react";

function Page() {
  const s = useRunStream("run-1", { host: "http://127.0.0.1:1", token: "t", remember: true });
  const r = useRun("run-1", { host: "http://127.0.0.1:1", getToken: () => "t" });
  const m = useMetadataStream("chatId", "c1", { host: "http://127.0.0.1:1", token: "t" });
  return createElement("pre", null, `${s.status}|${s.text}|${s.events.length}|${s.position}|${r.status}|${m.status}`);
}

const html = renderToString(createElement(Page));
if (html !== "<pre>idle||0||idle|idle</pre>") {
  console.error("server rendering shows", html);
  process.exit(1);
}
console.log("ssr ok");
