// The part of undici Ferry uses, loaded without the rest. undici's index loads every dispatcher,
// fetch, WebSocket, EventSource, the mock agents and the cache stores (109 modules): ~12 MB of RSS
// and 3 MB of heap in every operator and CSI driver process for code that never runs
// (docs/memory.md). These are undici's own modules, wired as its index wires them; the version is
// pinned exactly in package.json, and test/unit/undici.test.ts fails if a path moves.
import { createRequire } from 'node:module';
import type * as Undici from 'undici';

export type { Dispatcher } from 'undici';

const require = createRequire(import.meta.url);
const DispatcherClass = require('undici/lib/dispatcher/dispatcher.js') as typeof Undici.Dispatcher;
// What undici's index does with its whole api/ (Object.assign(Dispatcher.prototype, api)), for the
// one method Ferry calls.
Object.assign(DispatcherClass.prototype, { request: require('undici/lib/api/api-request.js') });

export const Agent = require('undici/lib/dispatcher/agent.js') as typeof Undici.Agent;
export type Agent = Undici.Agent;
export const retryInterceptor =
  require('undici/lib/interceptor/retry.js') as typeof Undici.interceptors.retry;
