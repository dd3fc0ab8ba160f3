import { fileURLToPath } from 'node:url'
import vue from '@vitejs/plugin-vue'
import { defineConfig } from 'vitest/config'

// The build goes into the Python package, which serves it at `/` (or under --root-path).
// `base: './'` keeps every asset URL relative, so the same build works under any sub-path.
export default defineConfig({
  base: './',
  plugins: [vue()],
  build: {
    outDir: fileURLToPath(new URL('../src/fleetwatch/web/static', import.meta.url)),
    emptyOutDir: true,
    chunkSizeWarningLimit: 600,
  },
  server: {
    // `npm run dev` against a hub on the default port (`make demo`).
    proxy: { '/api': { target: 'http://127.0.0.1:22000', ws: true } },
  },
  test: {
    include: ['tests/**/*.test.ts'],
    environment: 'node',
  },
})
