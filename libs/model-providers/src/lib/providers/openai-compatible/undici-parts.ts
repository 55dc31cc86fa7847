/**
 * The parts of undici this provider uses (Pool, Client, the `request` API), loaded from their own
 * files rather than from undici's index, which also loads fetch, WebSocket, EventSource, the cache
 * stores, the mock agents and the proxy agents. Every gateway worker would carry that code: ~2.9 MB
 * of live heap after boot (28.6 -> 25.7 MB, measured with a forced GC three seconds after start)
 * and ~2 MB of the node binary's pages.
 *
 * undici has no `exports` map, so these paths are importable, but they are internal: the version is
 * pinned exactly and undici-parts.spec.ts fails if they stop being what undici's index exports.
 * `request` is called with the dispatcher as `this` (undici's index copies it onto
 * Dispatcher.prototype; without the index that copy is not made).
 */
import { createRequire } from 'node:module';
import type { Client as UndiciClient, Dispatcher, Pool as UndiciPool } from 'undici';

const load = createRequire(import.meta.url);

export const Pool = load('undici/lib/dispatcher/pool.js') as typeof UndiciPool;
export type Pool = UndiciPool;
export const Client = load('undici/lib/dispatcher/client.js') as typeof UndiciClient;
export type Client = UndiciClient;

type RequestFn = (this: Dispatcher, options: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>;
const api = load('undici/lib/api/index.js') as { readonly request: RequestFn };

/** `dispatcher.request(options)` (undici's promise API: status, headers and a Readable body). */
export function request(dispatcher: Dispatcher, options: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData> {
  return api.request.call(dispatcher, options);
}

/** For the spec: the function `request` calls. */
export const requestImplementation: RequestFn = api.request;
