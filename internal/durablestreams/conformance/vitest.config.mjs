import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["runnel.test.mjs"],
    testTimeout: 30_000,
  },
})
