import { defineConfig } from "vite";

// Served by the API under /console/ (api.console.dir points at dist/).
export default defineConfig({
  base: "/console/",
  build: { outDir: "dist", emptyOutDir: true, sourcemap: true },
  server: { proxy: { "/v1": "http://127.0.0.1:8080" } },
});
