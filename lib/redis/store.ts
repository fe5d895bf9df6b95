import type { Redis, Cluster } from 'ioredis'
import { errors } from '../model/errors.js'
import { CommandTimeouts } from './command-timeouts.js'
import { Outage } from './outage.js'
import type { SessionStats } from '../model/stats.js'
import type { LocalCache } from '../model/local-cache.js'
import { isValidId } from '../model/ids.js'
import { ALIAS_SCRIPT, INDEX_ADD_SCRIPT, INDEX_DESTROY_SCRIPT, LATE_READ_SCRIPT, LOAD_SCRIPT, SAVE_SCRIPT, type Script } from './scripts.js'

type Arg = string | number

/** `rolled`: the read itself pushed the idle expiry forward (GETEX). */
export interface LoadedText { text: string, pttl: number, rolled: boolean }

/** `conflict`: the key holds another version, or no session document (an alias of a rotated id, say): `current`. */
export type SaveResult = { status: 'saved' } | { status: 'gone' } | { status: 'conflict', current: string }

/**
 * When a key is to expire, as Redis is told it (`PX` and ms, or `PXAT` and an epoch ms), and `at`,
 * the epoch ms it comes to (`keyExpiry` in lib/model/expiry.ts works it out).
 */
export interface Expiry {
  readonly mode: 'PX' | 'PXAT'
  readonly value: number
  readonly at: number
}

/** A rotation as the store carries it out: both ids are stored ids, both times epoch ms. */
export interface Rotation {
  from: string
  version: number
  to: string
  text: string
  expiresAt: number
  alias: string
  until: number
}

const SAVED: SaveResult = { status: 'saved' }
const GONE: SaveResult = { status: 'gone' }

export interface StoreOptions {
  client: Redis | Cluster
  /** Put before every key (`prefix`). */
  prefix: string
  /** How long a command may take, ms (`timeout`). */
  timeout: number
  /** Counts the commands that failed or timed out (`storeErrors`). */
  stats: SessionStats
  /** Tells when Redis is out of reach, so that commands fail at once; one without a log when not given. */
  outage?: Outage
  /** The local cache (`cache`): every write drops the entry of the key it changes at once. */
  cache?: LocalCache
}

/** Escapes Redis glob characters, so a prefix like `app[1]:` matches itself only. */
function globEscape (text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&')
}

/**
 * Every Redis command the plugin sends, each bounded by the configured timeout. Every `id` here is
 * a stored id (`storedIdOf` in lib/model/ids.ts: the id's hash with `hashIds`), never one a cookie
 * carries. Keys: a session is `${prefix}${id}`, a user's index (a sorted set of stored ids)
 * `${prefix}user:${user}`.
 */
export class SessionStore {
  readonly #client: Redis | Cluster
  readonly #prefix: string
  readonly #timeout: number
  readonly #timeouts: CommandTimeouts
  readonly #stats: SessionStats
  readonly #outage: Outage
  readonly #cache: LocalCache | undefined
  /** Why the connection the plugin owns last failed, until it is ready again: the `cause` of 503 errors. */
  connectionError: string | undefined = undefined

  constructor ({ client, prefix, timeout, stats, outage = new Outage(client, timeout), cache }: StoreOptions) {
    this.#client = client
    this.#cache = cache
    this.#outage = outage
    this.#prefix = prefix
    this.#timeout = timeout
    this.#timeouts = new CommandTimeouts(timeout)
    this.#stats = stats
  }

  #key (id: string): string {
    return this.#prefix + id
  }

  /** The key of `id`, about to be changed: its cached entry goes now, and no read in flight caches it. */
  #changing (id: string): string {
    this.#cache?.drop(id)
    return this.#prefix + id
  }

  /** The key of `id`, about to be saved: `#changing`, and the cache told this process saved it. */
  #saving (id: string): string {
    this.#cache?.saving(id)
    return this.#prefix + id
  }

  #userKey (user: string): string {
    return `${this.#prefix}user:${user}`
  }

  /**
   * The stored text and its remaining life in ms, or null when there is none. Rolling, the read
   * itself makes the key expire `ttl` seconds after `now` (GETEX … PXAT: run late, it gives no more
   * than that); the caller corrects it when the session's own TTL or its absolute deadline calls for
   * less, and when the read times out, LATE_READ_SCRIPT follows it to do so in Redis.
   */
  load (id: string, now: number, ttl: number, rolling: boolean): Promise<LoadedText | null> {
    if (rolling) {
      const pttl = ttl * 1000
      // GETEX is a write: it changes the key's expiry
      const key = this.#changing(id)
      return this.#bounded('load', () => this.#client.getex(key, 'PXAT', now + pttl), (text) => text === null ? null : { text, pttl, rolled: true }, undefined, () => {
        // queued now, on the same connection: Redis runs it right after the read, if ever it runs that
        this.#client.eval(LATE_READ_SCRIPT.lua, 1, key, now, pttl).catch(ignore)
      })
    }
    return this.#script('load', LOAD_SCRIPT, this.#key(id), [now], (reply) => {
      if (reply === null) return null
      const [text, pttl] = reply as [string, number]
      return { text, pttl, rolled: false }
    })
  }

  /**
   * `expiry` is this document's; `configuredTtl` (s) and the clock now let the script work out a
   * conflicting document's own, as an instant however late it runs.
   */
  save (id: string, expectedVersion: number, doc: string, expiry: Expiry, configuredTtl: number): Promise<SaveResult> {
    return this.#script('save', SAVE_SCRIPT, this.#saving(id), [expectedVersion, doc, expiry.mode, expiry.value, configuredTtl * 1000, Date.now()], (reply) => {
      if (reply === 1) return SAVED
      if (reply === 0) return GONE
      return { status: 'conflict', current: String(reply) }
    })
  }

  /**
   * Moves a session to a new id: stores `text` under `to` (never over an existing key) to expire
   * at `expiresAt`, then turns `from` into `alias` until `until`, provided it still holds
   * `version`. False, and nothing changed, when either step finds the ground moved.
   */
  async rotate ({ from, version, to, text, expiresAt, alias, until }: Rotation): Promise<boolean> {
    // both instants, not durations: either command may run late
    const stored = await this.#bounded('rotate', () => this.#client.set(this.#changing(to), text, 'PXAT', expiresAt, 'NX'), same)
    if (stored === null) return false
    const moved = await this.#script('rotate', ALIAS_SCRIPT, this.#changing(from), [version, alias, until], Number)
    if (moved === 1) return true
    await this.remove(to)
    return false
  }

  /** Ends an alias when it should, its `until` (epoch ms): a rolling read (GETEX) gave it the idle TTL. */
  endAliasAt (id: string, until: number): Promise<unknown> {
    return this.#bounded('alias', () => this.#client.pexpireat(this.#changing(id), until), same)
  }

  /** Deletes the session and returns what it held (GETDEL: nothing can slip in between). */
  take (id: string): Promise<string | null> {
    return this.#bounded('take', () => this.#client.getdel(this.#changing(id)), same)
  }

  remove (id: string): Promise<unknown> {
    return this.#bounded('remove', () => this.#client.del(this.#changing(id)), same)
  }

  /** Sets the key's expiry to `expiry.at`: an instant, so that run late it gives no more than when asked. */
  expire (id: string, expiry: Expiry): Promise<unknown> {
    return this.#bounded('expire', () => this.#client.pexpireat(this.#changing(id), expiry.at), same)
  }

  /** Adds a session to the user's index, which is made to live at least `ms` more; returns the index's size. */
  indexAdd (user: string, id: string, now: number, ms: number): Promise<number> {
    return this.#script('index', INDEX_ADD_SCRIPT, this.#userKey(user), [id, now, ms], Number)
  }

  /** The user's index: session ids, each followed by when it joined (epoch ms, as a string). */
  indexMembers (user: string): Promise<string[]> {
    return this.#bounded('index', () => this.#client.zrange(this.#userKey(user), '0', '-1', 'WITHSCORES'), same)
  }

  indexRemove (user: string, ids: string[]): Promise<unknown> {
    return this.#bounded('index', () => this.#client.zrem(this.#userKey(user), ...ids), same)
  }

  /** Deletes the session only while it still belongs to `user`; returns 1 when it did, 2 when the key is an alias, else 0. */
  indexDestroy (id: string, user: string): Promise<number> {
    return this.#script('destroy', INDEX_DESTROY_SCRIPT, this.#changing(id), [JSON.stringify(user)], Number)
  }

  /** How many sessions are stored under the prefix, on every master of a cluster (SCAN). */
  async countSessions (): Promise<number> {
    const client = this.#client
    const nodes: Redis[] = client.isCluster ? (client as Cluster).nodes('master') : [client as Redis]
    const pattern = globEscape(this.#prefix) + '*'
    let count = 0
    for (const node of nodes) {
      let cursor = '0'
      do {
        // TYPE string leaves out the user indexes; the id check, any other key under the prefix
        const [next, keys] = await this.#bounded('count', () => node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000, 'TYPE', 'string'), same)
        for (const key of keys) if (isValidId(key.slice(this.#prefix.length))) count++
        cursor = next
      } while (cursor !== '0')
    }
    return count
  }

  /**
   * EVALSHA, and EVAL once when Redis does not know the script yet (a new or restarted server,
   * another node of a cluster). Not ioredis' defineCommand: its wrapper costs on every call (docs/performance.md).
   */
  #script<R> (what: string, { sha, lua }: Script, key: string, args: Arg[], map: (reply: unknown) => R): Promise<R> {
    return this.#bounded(what, () => this.#client.evalsha(sha, 1, key, ...args), map, () => this.#client.eval(lua, 1, key, ...args))
  }

  /**
   * Sends a command unless Redis is known to be out of reach (lib/redis/outage.ts), and turns a slow or
   * failed command into a 503 error once `timeout` ms have passed; a late reply is ignored. `map`
   * shapes the reply in the same step, `noScript` resends a script Redis did not know, and `late`
   * runs at the timeout, for what Redis must still be told should the command run after all.
   * Addresses and causes go to the error's `cause` and the log, never into its message: Fastify
   * sends that to the client.
   */
  #bounded<T, R> (what: string, send: () => Promise<T>, map: (reply: T) => R, noScript?: () => Promise<T>, late?: () => void): Promise<R> {
    const outage = this.#outage
    const stats = this.#stats
    const down = outage.reason()
    if (down !== undefined) {
      stats.storeErrors++
      return Promise.reject(new errors.FST_REDIS_SESSION_STORE_UNAVAILABLE(`${what} not sent: ${down}`, this.#cause()))
    }
    const timeouts = this.#timeouts
    return new Promise((resolve, reject) => {
      const pending = timeouts.add(() => {
        stats.storeErrors++
        outage.timedOut()
        reject(new errors.FST_REDIS_SESSION_STORE_UNAVAILABLE(`${what} took longer than ${this.#timeout} ms`, this.#cause()))
        late?.()
      })
      const settled = (value: T): void => {
        outage.answered()
        if (timeouts.stop(pending)) resolve(map(value))
      }
      const failed = (err: unknown): void => {
        // resent only while the caller still waits: one told of a timeout must not be written for after all
        if (noScript !== undefined && pending.watched && err instanceof Error && err.message.startsWith('NOSCRIPT')) {
          const resend = noScript
          noScript = undefined
          resend().then(settled, failed)
          return
        }
        if (!timeouts.stop(pending)) return
        stats.storeErrors++
        reject(new errors.FST_REDIS_SESSION_STORE_UNAVAILABLE(`${what} failed`, { cause: err }))
      }
      send().then(settled, failed)
    })
  }

  /** What the log learns of a failure that has no error of its own: why the connection failed. */
  #cause (): { cause: unknown } | undefined {
    return this.connectionError === undefined ? undefined : { cause: new Error(this.connectionError) }
  }
}

function same<T> (value: T): T {
  return value
}

/** A command nobody waits for: its failure has nobody to tell. */
function ignore (): void {}
