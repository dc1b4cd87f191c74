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
# 65532 is the conventional "nonroot" uid/gid (distroless); the chart runs the pod with it too.
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["node", "src/cli/operator.ts"]
