import { defineConfig } from "vite";

// Built into ui/dist and served by cairn-server at /; the API is same-origin.
export default defineConfig({
  build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 1000 },
});
