# syntax=docker/dockerfile:1
# Ferry's image (operator and CSI driver), for users with Docker:
#
#   docker build -t ferry:0.1.0 .
#
# The local stack builds the same layout without a daemon (stack/lib/images.ts: /app with
# node_modules, package.json and src/, node at /usr/local/bin, util-linux mount for the CSI driver,
# uid 65532) and runs it on its kubelet node; keep the two in step.
# Node 24 runs the TypeScript sources directly (type stripping), so there is no compile step: the
# image is the production dependencies plus src/.

ARG NODE_IMAGE=node:24-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# Production dependencies only; --ignore-scripts because none of them needs an install script.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY src ./src
# A compile cache with every module already type-stripped and compiled: the processes never load
# Node's TypeScript stripper (~30 MB of RSS, docs/memory.md). Node keeps one cache directory per
# uid (the operator runs as 65532, the CSI driver as root), so it is filled as each.
ENV NODE_COMPILE_CACHE=/app/.node-compile-cache NODE_COMPILE_CACHE_PORTABLE=1
# V8's young generation grows to 128 MB under a reconcile burst; 4 MB semi-spaces cap it at 8 MB.
# V8 sizes its old space from the machine's memory, not the container's limit, so a pod with VSO's
# 128Mi limit was OOM-killed at 1,000 secrets: half the limit makes V8 collect first
# (docs/memory.md, docs/decisions.md). Set before the cache is filled: V8 rejects code cached
# under other flags. The chart sets the same (controller.manager.nodeOptions). The old generation's
# growth (--heap-growing-percent, refused in NODE_OPTIONS) the operator sets itself (src/cli/operator.ts).
ENV NODE_OPTIONS="--max-semi-space-size=4 --max-old-space-size-percentage=50"
RUN node src/cli/compile-cache.ts && chmod -R a+rX /app/.node-compile-cache && chown 65532:65532 /app/.node-compile-cache
# 65532 is the conventional "nonroot" uid/gid (distroless); the chart runs the pod with it too.
USER 65532:65532
RUN node src/cli/compile-cache.ts
EXPOSE 8080 8081
ENTRYPOINT ["node", "src/cli/operator.ts"]
