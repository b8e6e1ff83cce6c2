# syntax=docker/dockerfile:1
# imagestore: HTTP API on 3333 and the embedded MQTT broker on 1883, data in /data.

# --- build: compile TypeScript, then drop dev dependencies so the runtime copies only what it runs
FROM node:20-bookworm-slim AS builder
WORKDIR /app
# playwright-core (tests only) must never fetch a browser; @scarf/scarf's postinstall is telemetry.
ENV PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 SCARF_ANALYTICS=false
COPY package.json package-lock.json ./
COPY packages/client/package.json ./packages/client/
# --ignore-scripts: the package's own `prepare` (the build) needs the sources, copied below; `npm rebuild`
# then runs the dependencies' install scripts that package.json's allowScripts lets run.
RUN npm ci --ignore-scripts --no-audit --no-fund && npm rebuild --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY subscriber ./subscriber
COPY web ./web
COPY scripts/build-gallery.mjs ./scripts/
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# --- runtime: no compiler, no dev deps; runs as the image's unprivileged `node` user
FROM node:20-bookworm-slim
# MALLOC_ARENA_MAX=2: fewer glibc arenas keep the peak RSS of concurrent libvips work down (bench/RESULTS.md).
ENV NODE_ENV=production IMAGE_DB_DIR=/data HOST=0.0.0.0 MALLOC_ARENA_MAX=2
WORKDIR /app
# Code stays root-owned (read-only to the service); only /data is writable by `node`.
COPY --from=builder /app/node_modules ./node_modules
COPY --from=builder /app/dist ./dist
COPY --from=builder /app/package.json ./
# Served at /docs/events.md, linked from the OpenAPI document.
COPY docs/events.md ./docs/
# Created and chowned before VOLUME, so a fresh named volume inherits the owner.
RUN mkdir -p /data && chown node:node /data
VOLUME /data
USER node
EXPOSE 3333 1883
# The slim image has no curl; Node 20's global fetch does the probe.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3333)+'/livez').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/src/main.js"]
