/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// `npm run dev` serves the app with hot reload and sends API calls to a running `docket serve`
// (DOCKET_URL, default http://127.0.0.1:8080), so the app and the API share one origin as in
// production.
const api = process.env.DOCKET_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      "/api": { target: api, changeOrigin: false },
      "/docs": { target: api },
    },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // The CSP allows no inline script: keep everything in files.
    assetsInlineLimit: 0,
    // The budget that matters is checked by scripts/bundle-size.mjs (initial JavaScript).
    chunkSizeWarningLimit: 800,
  },
  test: {
    environment: "jsdom",
    globals: true,
    setupFiles: ["./src/test/setup.ts"],
    include: ["src/**/*.test.{ts,tsx}"],
    css: false,
  },
});
