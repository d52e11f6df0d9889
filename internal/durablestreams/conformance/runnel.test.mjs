// The Durable Streams server conformance suite against the server at
// RUNNEL_CONFORMANCE_URL (a token-adding proxy in front of a runnel
// server; see conformance_test.go, which runs this).
import { describe } from "vitest"
import { runConformanceTests } from "@durable-streams/server-conformance-tests"

const baseUrl = process.env.RUNNEL_CONFORMANCE_URL
if (!baseUrl) throw new Error("RUNNEL_CONFORMANCE_URL is not set")

describe("runnel", () => {
  runConformanceTests({ baseUrl, longPollTimeoutMs: 10_000 })
})
