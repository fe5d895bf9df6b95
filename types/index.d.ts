import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyPluginAsync, FastifyError, FastifyRequest, FastifyBaseLogger } from 'fastify'
import type { FastifyErrorConstructor } from '@fastify/error'
import type { Redis, Cluster, RedisOptions } from 'ioredis'
import type { TObject, Static } from '@sinclair/typebox'

/**
 * The shape of the data an app keeps in its sessions. Augment it to type every call:
 *
 * ```ts
 * declare module 'fastify-session-redis' {
 *   interface SessionData { user: { id: number }, views: number }
 * }
 * ```
 *
 * Left empty, every string key is allowed and values are `unknown`. Once augmented, only the
 * declared keys are; add an index signature (`[key: string]: unknown`) to allow others. With a
 * `schema`, derive it from the schema: `interface SessionData extends Static<typeof schema> {}`.
 */
export interface SessionData {}

type Known = keyof SessionData
/**
 * The keys `get`/`set` accept: the declared ones (index signatures included), or any string while
 * `SessionData` is empty.
 */
export type SessionKey = [Known] extends [never] ? string : Extract<Known, string>
/** The value type stored under `K`. */
export type SessionValue<K> = K extends Known ? SessionData[K] : unknown
/** The keys whose values are numbers: the only ones `increment` accepts. */
export type NumericSessionKey = [Known] extends [never]
  ? string
  : Extract<keyof { [K in keyof SessionData as SessionData[K] extends number | undefined ? K : never]: 0 }, string>

/** Turns a TypeBox session schema into the `SessionData` it describes: `Static<T>`. */
export type SessionDataOf<T extends TObject> = Static<T>

export interface SessionCookieOptions {
  /** @default '/' */
  path?: string
  /** Unset: a host-only cookie. */
  domain?: string
  /** @default true */
  httpOnly?: boolean
  /** `'auto'`: Secure when the request came over HTTPS (`request.protocol`, so `trustProxy` counts). @default 'auto' */
  secure?: boolean | 'auto'
  /** @default 'lax' */
  sameSite?: 'lax' | 'strict' | 'none' | boolean
  /** CHIPS partitioned cookie. @default false */
  partitioned?: boolean
  /** Seconds; unset means a browser-session cookie. Never outlives the session's absolute deadline. */
  maxAge?: number
}

export interface RedisSessionOptions {
  /** An ioredis client the app owns; the plugin never closes it. Give this or `redis`. */
  client?: Redis | Cluster
  /** Instead of `client`: a URL or ioredis options; the plugin owns that connection and closes it on `app.close()`. */
  redis?: string | RedisOptions
  /**
   * At least 32 characters; an array rotates secrets: the first signs, all verify. Required: the
   * key must be given; `undefined` (an unset `process.env.X`) type-checks and fails at registration.
   */
  secret: string | readonly string[] | undefined
  /** @default 'sid' */
  cookieName?: string
  /** @default { path: '/', httpOnly: true, secure: 'auto', sameSite: 'lax' } */
  cookie?: SessionCookieOptions
  /**
   * Where the signed session id travels: the cookie; the `header` both ways (no cookie read or
   * set); or both, the header winning when a request carries both. @default 'cookie'
   */
  idFrom?: 'cookie' | 'header' | 'both'
  /** The request and response header holding the signed id with `idFrom` `'header'` or `'both'`. @default 'x-session-id' */
  header?: string
  /** Redis key prefix. @default 'sess:' */
  prefix?: string
  /** Idle timeout in seconds; sliding. @default 86400 */
  ttl?: number
  /** Lifetime from creation in seconds; never extended. @default 604800 */
  absoluteTtl?: number
  /** A request that loads the session pushes its idle expiry forward. @default true */
  rolling?: boolean
  /** Store a new session even when nothing was written to it. @default false */
  saveUninitialized?: boolean
  /**
   * Makes session ids; each must match /^[A-Za-z0-9_-]{22,128}$/. Gets the request, or, for a
   * session of `app.sessions.fromHeaders`, the `SessionOrigin` made of what its caller passed.
   * @default 32 random bytes, base64url
   */
  idGenerator? (request: FastifyRequest | SessionOrigin): string
  /** Milliseconds allowed to every Redis operation the plugin awaits. @default 2000 */
  timeout?: number
  /** Largest stored session, in bytes of JSON. @default 65536 */
  maxBytes?: number
  /** A TypeBox `Type.Object` of the session data, every key optional: checked by `set`, `increment` and every load. */
  schema?: TObject
  /** Session key naming the user: a session whose value there is a string or number joins that user's index. @default undefined */
  userKey?: string
  /**
   * Seconds after which a session gets a new id on its next request (OWASP's renewal timeout); the
   * old id keeps leading to the session for `rotateGrace` seconds. Unset: ids change only through
   * `regenerate()`. @default undefined
   */
  rotateEvery?: number
  /** Seconds an id rotated away still leads to its session, for requests in flight or in other tabs. @default 30 */
  rotateGrace?: number
  /** Keep the client's ip and user agent, as of the session's last save, for `app.sessions.list`. @default false */
  trackClient?: boolean
  /**
   * Key each session by the SHA-256 of its id, never the id itself, so that a read of Redis (a dump,
   * a replica, MONITOR) gives no id a cookie could carry. Changing it ends every stored session. @default true
   */
  hashIds?: boolean
  /**
   * Keep recently read sessions in this process and answer reads from there, kept coherent by Redis
   * client-side caching (docs/local-cache.md); `true` for the defaults. Not with a Cluster client
   * (`FST_REDIS_SESSION_CACHE_CLUSTER`). @default undefined (no cache)
   */
  cache?: boolean | SessionCacheOptions
}

/** The local session cache (`cache`). */
export interface SessionCacheOptions {
  /** Sessions kept at most; the least recently used goes first. @default 10000 */
  max?: number
  /**
   * Milliseconds the cache keeps answering after Redis last proved the invalidation connection alive;
   * with delivery, the longest another instance's write or logout can go unseen here. @default 500
   */
  lease?: number
  /** Seconds between two refreshes of a session's idle expiry in Redis (a hit does not refresh it); less than `ttl`. @default ttl / 10 */
  refreshEvery?: number
}

/** One of a user's live sessions, as `app.sessions.list` shows it. */
export interface SessionInfo {
  /**
   * 8 characters of the id as Redis holds it (of its hash, with `hashIds`): enough to tell sessions
   * apart, too few to use one. `app.sessions.idHint(id)` gives the same for an id you hold.
   */
  idHint: string
  /** Epoch milliseconds. */
  createdAt: number
  /** Epoch milliseconds: the earlier of the idle and absolute deadlines. */
  expiresAt: number
  /** Epoch milliseconds, to a few ms: when the idle timeout last restarted; absent while the absolute deadline is nearer. */
  lastSeen?: number
  /** With `trackClient`: `request.ip` at the last save. */
  ip?: string
  /** With `trackClient`: the User-Agent at the last save (at most 256 characters). */
  userAgent?: string
}

/** Counters since the plugin started. */
export interface SessionStats {
  /** Stored sessions a request loaded. */
  loaded: number
  /** Sessions stored for the first time (new, or regenerated). */
  created: number
  /** Requests whose changes were written. */
  saved: number
  /** Sessions deleted by `destroy()`, `app.sessions.destroy` or `destroyAll`. */
  destroyed: number
  /** Saves that met a newer stored version and replayed their changes onto it. */
  conflicts: number
  /** Session cookies refused: bad signature or malformed id. */
  rejectedCookies: number
  /** Redis commands that failed or timed out. */
  storeErrors: number
  /** Session ids replaced under `rotateEvery`. */
  rotated: number
  /** With `cache`: loads answered from the local cache, without Redis. */
  cacheHits: number
  /** With `cache`: loads that went to Redis (not cached, due for a refresh, or the lease ran out). */
  cacheMisses: number
  /** With `cache`: keys Redis said changed (each write of any instance to a session or index key under `prefix`). */
  cacheInvalidations: number
  /** With `cache`: times the cache stopped answering, its lease run out or its connection lost. */
  cacheLeaseExpiries: number
}

/** The data `app.sessions.create` stores: the declared keys, or any keys while `SessionData` is empty. */
export type SessionDataInput = [Known] extends [never] ? Record<string, unknown> : Partial<SessionData>

export interface CreateSessionOptions {
  /** The session's own idle timeout in seconds, as `setTtl` sets it. @default the `ttl` option */
  ttl?: number
  /** A remembered session, as `rememberMe()` makes it. @default false */
  rememberMe?: boolean
}

/** A stored session and what a client sends to be in it. */
export interface CreatedSession {
  /** The session id. */
  id: string
  /** `name=value` of the session cookie, ready for a Cookie header. */
  cookie: string
  /** The headers to send with `idFrom` as configured: `cookie`, the id header, or both. */
  headers: Record<string, string>
}

/**
 * What the plugin reads of a request: its headers (Cookie, User-Agent), ip (`trackClient`),
 * protocol (`cookie.secure: 'auto'`) and logger. A `FastifyRequest` is one; `app.sessions.fromHeaders`
 * makes one from what it is given.
 */
export interface SessionOrigin {
  readonly headers: IncomingHttpHeaders
  readonly ip: string | undefined
  readonly protocol: 'http' | 'https'
  readonly log: FastifyBaseLogger
}

/** Where the headers given to `app.sessions.fromHeaders` came from. */
export interface FromHeadersOptions {
  /** The client's address, kept with `trackClient` (e.g. `req.socket.remoteAddress`). Unset: none is kept. */
  ip?: string
  /** `'https'` when the connection is TLS: decides `Secure` with `cookie.secure: 'auto'`. @default 'http' */
  protocol?: 'http' | 'https'
  /** @default the app's logger */
  log?: FastifyBaseLogger
}

/**
 * A session outside an HTTP handler (WebSocket, server-sent events, socket.io): nothing is written
 * unless `save()` is called, and no response carries its cookie unless the caller sends
 * `setCookieHeader()` itself.
 */
export type DetachedSession = Session & Partial<SessionData> & {
  /**
   * The `Set-Cookie` header value an HTTP response would carry now: the signed id once a new
   * session was saved (or its cookie was signed by an older secret), a clearing cookie after
   * `destroy()` or a bare `regenerate()`; undefined when the client's cookie is right as it is.
   */
  setCookieHeader (): string | undefined
}

/** `app.sessions`: sessions seen from outside a request. */
export interface SessionManager {
  /**
   * Stores a new session holding `data` (checked and written as a request's would be, joining the
   * user index with `userKey`) and returns its id and signed credentials: for tests and tools.
   */
  create (data?: SessionDataInput, options?: CreateSessionOptions): Promise<CreatedSession>
  /**
   * The session a raw `Cookie` header names, checked as a request's would be, or a fresh one when it
   * names none (no cookie, a bad one, an ended session): for WebSocket, SSE or socket.io handlers.
   */
  fromHeaders (headers: IncomingHttpHeaders, options?: FromHeadersOptions): Promise<DetachedSession>
  /** The data of a live session, or null. Does not extend its life. */
  get (id: string): Promise<(Partial<SessionData> & Record<string, unknown>) | null>
  /** Deletes a session; resolves true when there was one. */
  destroy (id: string): Promise<boolean>
  /** Stored sessions under the prefix (SCAN on every master, never KEYS). */
  count (): Promise<number>
  /** A copy of the counters. */
  stats (): SessionStats
  /** The user's live sessions, oldest first (needs `userKey`). */
  list (user: string | number): Promise<SessionInfo[]>
  /** Deletes every session of the user except `except` (a full id); resolves how many (needs `userKey`). */
  destroyAll (user: string | number, options?: { except?: string }): Promise<number>
  /** The `idHint` that `list` shows for the session with this (full) id, such as `request.session.id`. */
  idHint (id: string): string
}

/** `request.session`: the session, with its data keys also readable and writable as properties. */
export type RequestSession = Session & Partial<SessionData>

/** Node-style callback of the lifecycle methods, as @fastify/session takes them. */
export type SessionCallback = (err?: Error) => void

/** The session of one request: `request.session`. */
export interface Session {
  /** The session id (also what the signed cookie carries). */
  readonly id: string
  /** Same as `id`, under @fastify/session's name. */
  readonly sessionId: string
  /** True until the session has been stored once. */
  readonly isNew: boolean
  /** Epoch milliseconds of creation. */
  readonly createdAt: number
  /** Epoch milliseconds: the earlier of the idle and absolute deadlines. */
  readonly expiresAt: number
  /** True when this request changed something that will be saved. */
  isModified (): boolean

  get<K extends SessionKey> (key: K): SessionValue<K> | undefined
  /** Throws at once for a value JSON cannot hold faithfully, naming the key. */
  set<K extends SessionKey> (key: K, value: SessionValue<K>): void
  delete (key: SessionKey): void
  has (key: SessionKey): boolean
  /** Removes every key (metadata and flash messages stay). */
  clear (): void
  /** A copy of the data. */
  toJSON (): Partial<SessionData> & Record<string, unknown>
  /** Adds `step` (default 1) to a numeric key atomically with respect to other requests; returns the value this request sees. */
  increment (key: NumericSessionKey, step?: number): number

  /** Adds flash messages of a type. */
  flash (type: string, message: string | readonly string[]): void
  /** Returns the messages of a type and removes them. */
  flash (type: string): string[]
  /** Returns every flash message, by type, and removes them. */
  flash (): Record<string, string[]>

  /**
   * A new id; the old id is deleted at once. Keeps the data keys listed in `keep` and nothing else
   * (no key, no flash message), as @fastify/session does: call it at login with the keys to carry
   * over, and at logout bare. A session that keeps nothing and gets no new data is not stored: its
   * cookie is cleared.
   */
  regenerate (keep?: readonly SessionKey[]): Promise<void>
  regenerate (callback: SessionCallback): void
  regenerate (keep: readonly SessionKey[], callback: SessionCallback): void
  /** Deletes the session and clears its cookie; the request goes on with a fresh, empty session. */
  destroy (): Promise<void>
  destroy (callback: SessionCallback): void
  /** Re-reads the session from Redis, dropping this request's unsaved changes. */
  reload (): Promise<void>
  reload (callback: SessionCallback): void
  /** Writes now instead of when the response is sent. */
  save (): Promise<void>
  save (callback: SessionCallback): void
  /** A copy of the data (@fastify/secure-session's name for `toJSON`). */
  data (): Partial<SessionData> & Record<string, unknown>
  /**
   * Cookie attributes for this response's session cookie (@fastify/secure-session's API); other
   * fields are ignored. A stored session's cookie is sent again with them.
   */
  options (options: SessionCookieOptions & Record<string, unknown>): void
  /** Pushes the idle expiry forward without rewriting the data. */
  touch (): void
  /** This session's idle timeout in seconds (still capped by the absolute deadline). */
  setTtl (seconds: number): void
  /**
   * `true` (the default): a remembered session, whose cookie gets a Max-Age of the session's
   * remaining life, kept with the session. `false`: back to the configured cookie (a
   * browser-session cookie unless `cookie.maxAge` is set).
   */
  rememberMe (remember?: boolean): void
  /** Whether `rememberMe()` made this session's cookie persistent. */
  readonly isPersistent: boolean
}

/**
 * Session lifecycle events, published on Node's `diagnostics_channel` under these names only while
 * a channel has subscribers. Messages carry hints (`idHint`: 8 characters of the id as Redis holds it, its hash with `hashIds`, as `app.sessions.idHint(id)` gives), sizes,
 * versions, durations and outcomes; never an id, a cookie or session data.
 */
export declare const channels: {
  readonly load: 'fastify-session-redis:load'
  readonly save: 'fastify-session-redis:save'
  readonly conflict: 'fastify-session-redis:conflict'
  readonly create: 'fastify-session-redis:create'
  readonly destroy: 'fastify-session-redis:destroy'
  readonly regenerate: 'fastify-session-redis:regenerate'
  readonly expired: 'fastify-session-redis:expired'
  readonly cache: 'fastify-session-redis:cache'
}

/** `load`: a session cookie that verified was looked up in Redis (also `reload()`). */
export interface SessionLoadEvent {
  idHint: string
  /** `found`; `missing`: no such key; `expired`: past its absolute deadline; `invalid`: unreadable or not matching `schema`. The last three are discarded. */
  outcome: 'found' | 'missing' | 'expired' | 'invalid'
  /** The stored version found, 0 otherwise. */
  version: number
  /** UTF-8 bytes of the stored document found, 0 otherwise. */
  bytes: number
  /** Milliseconds from the lookup to the session being ready, including any TTL fix or delete. */
  durationMs: number
}

/** `save`: one request's (or `save()` call's) changes were written, or failed to be. */
export interface SessionSaveEvent {
  idHint: string
  outcome: 'saved' | 'failed'
  /** The error code of a failed save (`FST_REDIS_SESSION_CONFLICT`, …). */
  code?: string
  /** The session was not stored before this save. */
  isNew: boolean
  /** The version written; 0 when the save failed. */
  version: number
  /** UTF-8 bytes written; 0 when the save failed. */
  bytes: number
  /** Milliseconds from the save being asked for to its outcome, waiting for other saves included. */
  durationMs: number
}

/** `conflict`: a write met a newer stored version (another process wrote meanwhile) and replays onto it. */
export interface SessionConflictEvent {
  idHint: string
  /** 1 for the first lost race of this write. */
  attempt: number
  /** Requests whose changes the write carries. */
  requests: number
}

/** `create`: a new session (or a regenerated one) was stored for the first time. */
export interface SessionCreateEvent {
  idHint: string
  bytes: number
}

/** `destroy`: a stored session was deleted. */
export interface SessionDestroyEvent {
  idHint: string
  /** `session`: its own `destroy()`; `admin`: `app.sessions.destroy` or `destroyAll`. */
  by: 'session' | 'admin'
}

/** `regenerate`: a session got a new id. */
export interface SessionRegenerateEvent {
  /** The new id's hint. */
  idHint: string
  /** The old id's, when it was stored. */
  previousHint?: string
  /** Data keys carried over. */
  kept: number
}

/** `expired`: a session cookie named a session Redis no longer holds, or one past its absolute deadline. */
export interface SessionExpiredEvent {
  idHint: string
  reason: 'missing' | 'deadline'
}

/** `cache`: the local cache stopped or started answering, or dropped every entry. */
export interface SessionCacheEvent {
  /** `stopped`: reads go to Redis; `answering`: the cache answers again; `flushed`: every entry dropped. */
  state: 'stopped' | 'answering' | 'flushed'
  /**
   * `lease`: no proof of life within `lease`; `connection`: the invalidation connection closed;
   * `ready`: it (re)connected (tracking starts afresh); `flush`: Redis was flushed; `proven`: a PING
   * came back within the lease.
   */
  reason: 'lease' | 'connection' | 'ready' | 'flush' | 'proven'
  /** Entries dropped (`flushed`) or held. */
  entries: number
}

export interface RedisSessionErrors {
  FST_REDIS_SESSION_INVALID_OPTION: FastifyErrorConstructor<{ code: 'FST_REDIS_SESSION_INVALID_OPTION', statusCode: 500 }, [string, string]>
  FST_REDIS_SESSION_STORE_UNAVAILABLE: FastifyErrorConstructor<{ code: 'FST_REDIS_SESSION_STORE_UNAVAILABLE', statusCode: 503 }, [string, { cause: unknown }?]>
  FST_REDIS_SESSION_CONFLICT: FastifyErrorConstructor<{ code: 'FST_REDIS_SESSION_CONFLICT', statusCode: 503 }, [attempts: number, ms: number]>
  FST_REDIS_SESSION_GONE: FastifyErrorConstructor<{ code: 'FST_REDIS_SESSION_GONE', statusCode: 409 }, []>
  FST_REDIS_SESSION_INVALID_KEY: FastifyErrorConstructor<{ code: 'FST_REDIS_SESSION_INVALID_KEY', statusCode: 500 }, [string]>
  FST_REDIS_SESSION_INVALID_VALUE: FastifyErrorConstructor<{ code: 'FST_REDIS_SESSION_INVALID_VALUE', statusCode: 500 }, [string, string, { cause: unknown }?]>
  FST_REDIS_SESSION_SCHEMA_MISMATCH: FastifyErrorConstructor<{ code: 'FST_REDIS_SESSION_SCHEMA_MISMATCH', statusCode: 500 }, [string, string]>
  FST_REDIS_SESSION_TOO_LARGE: FastifyErrorConstructor<{ code: 'FST_REDIS_SESSION_TOO_LARGE', statusCode: 507 }, [number, number]>
  FST_REDIS_SESSION_NONE: FastifyErrorConstructor<{ code: 'FST_REDIS_SESSION_NONE', statusCode: 500 }, [reason: string]>
  FST_REDIS_SESSION_BAD_ID: FastifyErrorConstructor<{ code: 'FST_REDIS_SESSION_BAD_ID', statusCode: 500 }, []>
  FST_REDIS_SESSION_CACHE_CLUSTER: FastifyErrorConstructor<{ code: 'FST_REDIS_SESSION_CACHE_CLUSTER', statusCode: 500 }, []>
}

/** Every error the plugin raises, by code. */
export declare const errors: RedisSessionErrors

export type { FastifyError }

/** TypeBox's `Type` builder, the one the plugin compiles `schema` with: an app needs no TypeBox of its own. */
export { Type } from '@sinclair/typebox'

declare const redisSession: FastifyPluginAsync<RedisSessionOptions>
export { redisSession }
export default redisSession

declare module 'fastify' {
  interface FastifyInstance {
    /** Sessions seen from outside a request: look up, count, list and revoke. */
    sessions: SessionManager
  }
  interface FastifyRequest {
    /**
     * The request's session. Where there is none, reading it throws `FST_REDIS_SESSION_NONE`: on a
     * route with `config: { session: false }`, and in a hook that runs before the plugin's onRequest.
     * Code shared by every route can ask `request.routeOptions.config.session !== false` first.
     * The data keys are also properties (`request.session.user = x`), as with @fastify/session.
     */
    session: RequestSession
  }
  interface FastifyContextConfig {
    /** `false`: this route neither loads nor sets a session. */
    session?: boolean
  }
}
