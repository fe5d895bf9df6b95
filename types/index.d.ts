import type { FastifyPluginAsync, FastifyError, FastifyRequest } from 'fastify'
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
  /** Makes session ids from the request; each must match /^[A-Za-z0-9_-]{22,128}$/. @default 32 random bytes, base64url */
  idGenerator?: (request: FastifyRequest) => string
  /** Milliseconds allowed to every Redis operation the plugin awaits. @default 2000 */
  timeout?: number
  /** Largest stored session, in bytes of JSON. @default 65536 */
  maxBytes?: number
  /** A TypeBox `Type.Object` of the session data, every key optional: checked by `set`, `increment` and every load. */
  schema?: TObject
  /** Session key naming the user: a session whose value there is a string or number joins that user's index. @default undefined */
  userKey?: string
  /** Keep the client's ip and user agent, as of the session's last save, for `app.sessions.list`. @default false */
  trackClient?: boolean
  /**
   * Key each session by the SHA-256 of its id, never the id itself, so that a read of Redis (a dump,
   * a replica, MONITOR) gives no id a cookie could carry. Changing it ends every stored session. @default true
   */
  hashIds?: boolean
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
}

/** `app.sessions`: sessions seen from outside a request. */
export interface SessionManager {
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
}

export interface RedisSessionErrors {
  FST_REDIS_SESSION_INVALID_OPTION: FastifyErrorConstructor<{ code: 'FST_REDIS_SESSION_INVALID_OPTION', statusCode: 500 }, [string, string]>
  FST_REDIS_SESSION_STORE_UNAVAILABLE: FastifyErrorConstructor<{ code: 'FST_REDIS_SESSION_STORE_UNAVAILABLE', statusCode: 503 }, [string, { cause: unknown }?]>
  FST_REDIS_SESSION_CONFLICT: FastifyErrorConstructor<{ code: 'FST_REDIS_SESSION_CONFLICT', statusCode: 503 }, [attempts: number, ms: number]>
  FST_REDIS_SESSION_GONE: FastifyErrorConstructor<{ code: 'FST_REDIS_SESSION_GONE', statusCode: 409 }, []>
  FST_REDIS_SESSION_INVALID_KEY: FastifyErrorConstructor<{ code: 'FST_REDIS_SESSION_INVALID_KEY', statusCode: 500 }, [string]>
  FST_REDIS_SESSION_INVALID_VALUE: FastifyErrorConstructor<{ code: 'FST_REDIS_SESSION_INVALID_VALUE', statusCode: 500 }, [string, string]>
  FST_REDIS_SESSION_SCHEMA_MISMATCH: FastifyErrorConstructor<{ code: 'FST_REDIS_SESSION_SCHEMA_MISMATCH', statusCode: 500 }, [string, string]>
  FST_REDIS_SESSION_TOO_LARGE: FastifyErrorConstructor<{ code: 'FST_REDIS_SESSION_TOO_LARGE', statusCode: 507 }, [number, number]>
  FST_REDIS_SESSION_BAD_ID: FastifyErrorConstructor<{ code: 'FST_REDIS_SESSION_BAD_ID', statusCode: 500 }, []>
}

/** Every error the plugin raises, by code. */
export declare const errors: RedisSessionErrors

export type { FastifyError }

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
     * The request's session. On routes registered with `config: { session: false }` it is `null` at run time.
     * The data keys are also properties (`request.session.user = x`), as with @fastify/session.
     */
    session: RequestSession
  }
  interface FastifyContextConfig {
    /** `false`: this route neither loads nor sets a session. */
    session?: boolean
  }
}
