import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import type { SessionCacheEvent } from '../../types/index.js'
import type { LocalCache } from '../model/local-cache.js'
import { logBindings } from '../model/errors.js'
import { addressOf } from './outage.js'

const CHANNEL = '__redis__:invalidate'

export interface InvalidationOptions {
  /** The app's client: both connections are its duplicates. */
  client: Redis
  /** The session keys' prefix: every key the data connection reads starts with it. */
  prefix: string
  cache: LocalCache
  /** ms: a PING goes out every quarter of it. */
  lease: number
  log: FastifyBaseLogger
  /** ms `close()` waits for `data` to answer what it was sent. */
  timeout: number
}

/**
 * The local cache's two connections to Redis, both the plugin's own:
 * - `data` carries every session command of this process. Redis tracks for it (default mode, not
 *   BCAST) each key it reads with a read-only command, the plain reads the cache keeps, until that
 *   key next changes; with NOLOOP, a change it makes itself is not sent back (the store drops its
 *   entry as it sends the change). So a session written on every request, loaded with GETEX (a
 *   write) and saved, costs no invalidation at all; a change costs one message per instance that
 *   read the key since its last change.
 * - the invalidation connection hears, as pub/sub messages (RESP2) on `__redis__:invalidate`, the
 *   changes any other client makes to those keys.
 * A PING on the invalidation connection, answered after every invalidation Redis sent before it,
 * then one on `data`, answered on the connection whose tracking sends them, is the cache's proof
 * that it has heard of every change up to when the first was sent.
 */
export class Invalidations {
  /** For the store: session commands go here with the cache on. */
  readonly data: Redis
  readonly #connection: Redis
  /** The prefix's length in bytes, where a key's id starts. */
  readonly #idStart: number
  readonly #cache: LocalCache
  readonly #log: FastifyBaseLogger
  readonly #timer: NodeJS.Timeout
  readonly #address: string
  readonly #timeout: number
  /** The invalidation connection's client id once it is ready and subscribed, for REDIRECT. */
  #redirect: string | undefined
  /** Why a connection last failed, until it is ready again: logged once. */
  #failure: string | undefined
  #pinging = false
  #closed = false

  constructor ({ client, prefix, cache, lease, log, timeout }: InvalidationOptions) {
    this.#cache = cache
    this.#timeout = timeout
    this.#log = log
    // the keys as Redis names them: ioredis puts its own keyPrefix (default '') before the plugin's
    this.#idStart = Buffer.byteLength([client.options.keyPrefix, prefix].join(''))
    this.#address = addressOf(client)
    // the app's options (retries, offline queue, timeouts, auto-pipelining) hold for the session commands
    this.data = client.duplicate({ lazyConnect: true })
    this.data.on('ready', () => { this.#dataReady() })
    this.data.on('close', () => { this.#lost() })
    // RESP2 (ioredis 6 speaks RESP3 by default, and drops the push frames RESP3 carries invalidations in)
    // set up again on every connect, nothing resent: a SUBSCRIBE resent before the new CLIENT ID would refuse it
    this.#connection = client.duplicate({ protocol: 2, autoResubscribe: false, autoResendUnfulfilledCommands: false, enableOfflineQueue: false, lazyConnect: true, maxRetriesPerRequest: null })
    const connection = this.#connection
    connection.on('ready', () => { this.#ready() })
    connection.on('close', () => { this.#redirect = undefined; this.#lost() })
    connection.on('error', (err: Error) => { this.#failed(err.message) })
    connection.on('messageBuffer', (_channel: Buffer, keys: Buffer[] | null) => { this.#message(keys) })
    this.#timer = setInterval(() => { this.#ping() }, Math.max(1, Math.floor(lease / 4)))
    this.#timer.unref()
  }

  /** Connects; the cache answers once tracking is on and a PING came back. */
  start (): void {
    // a failed connect is reported through the 'error' event; ioredis goes on reconnecting
    this.data.connect().catch(ignore)
    this.#connection.connect().catch(ignore)
  }

  /** Closes both connections: `data` once what it was sent is answered, or `timeout` ms at most. */
  async close (): Promise<void> {
    this.#closed = true
    clearInterval(this.#timer)
    this.#connection.disconnect()
    const data = this.data
    if (data.status === 'ready') {
      let timer: NodeJS.Timeout | undefined
      const late = new Promise<void>((resolve) => { timer = setTimeout(resolve, this.#timeout) })
      await Promise.race([data.quit().then(ignore, ignore), late])
      clearTimeout(timer)
    }
    data.disconnect()
  }

  /** Either connection closed, or (re)connected and is not tracking yet: what it heard counts no more. */
  #lost (): void {
    // ioredis up to 6.0.0 never settles a command it does not resend (redis/ioredis#2193; the invalidation connection resends
    // nothing): a round in flight is given up. Should it settle after all, one more round may overlap the next: harmless
    // (a proof only moves forward)
    this.#pinging = false
    if (!this.#closed) this.#cache.lost('connection')
  }

  #ready (): void {
    // a new connection: a new client id, and any invalidation since the last one lost
    this.#cache.lost('ready')
    const connection = this.#connection
    if (this.#failure !== undefined) this.#log.info(logBindings, `fastify-session-redis: the session cache's connection to Redis at ${this.#address} is ready again`)
    this.#failure = undefined
    connection.client('ID')
      // subscribed, the connection takes no CLIENT command: its id is asked first
      .then((id) => connection.subscribe(CHANNEL).then(() => {
        this.#redirect = String(id)
        this.#track()
      }), (err: Error) => {
        // lost meanwhile (nothing is resent): the next connection sets itself up
        if (connection.status === 'ready') this.#failed(`cannot turn on tracking: ${err.message}`)
      })
  }

  #dataReady (): void {
    // a new data connection: tracking is off on it, and changes made meanwhile went unheard
    this.#cache.lost('ready')
    this.#track()
  }

  /** Turns tracking on for `data`, sent to the invalidation connection, once both are ready. */
  #track (): void {
    const data = this.data
    const redirect = this.#redirect
    if (redirect === undefined || data.status !== 'ready') return
    const epoch = this.#cache.epoch
    // sent together, in order: after the invalidation connection alone reconnected, tracking is on with its old id
    const off = data.call('CLIENT', 'TRACKING', 'OFF')
    const on = data.call('CLIENT', 'TRACKING', 'ON', 'REDIRECT', redirect, 'NOLOOP')
    Promise.all([off, on]).then(() => {
      this.#cache.trackingOn(epoch)
      this.#ping()
    }, (err: Error) => { this.#failed(`cannot turn on tracking: ${err.message}`) })
  }

  #failed (cause: string): void {
    if (this.#failure === cause) return
    this.#failure = cause
    this.#log.warn(logBindings, `fastify-session-redis: the session cache's connection to Redis at ${this.#address} failed (${cause}); reads go to Redis until it is back`)
  }

  /** Subscribed to one channel only: every message is an invalidation. */
  #message (keys: Buffer[] | null): void {
    const cache = this.#cache
    // FLUSHALL, FLUSHDB: every key
    if (keys === null) {
      cache.flush('flush')
      return
    }
    const start = this.#idStart
    for (const key of keys) cache.invalidated(key.toString('utf8', start))
  }

  /**
   * One round at a time: a PING on the invalidation connection (every invalidation before it has
   * arrived), then one on `data` (its tracking, which sends them, was still on by then). A stalled
   * connection gets no more, and the lease runs out.
   */
  #ping (): void {
    const cache = this.#cache
    // notes a lease run out even while no read asks
    cache.answering()
    if (this.#pinging || !cache.tracking) return
    const epoch = cache.epoch
    const sentAt = performance.now()
    this.#pinging = true
    this.#connection.ping()
      .then(() => this.data.ping())
      .then(() => { if (this.#sameServer()) cache.proven(epoch, sentAt) }, ignore)
      .finally(() => { this.#pinging = false })
  }

  /**
   * Whether both connections talk to one server: invalidations of another server (a Sentinel
   * failover that one connection followed before the other) prove nothing.
   */
  #sameServer (): boolean {
    const ours = this.#connection.stream
    const theirs = this.data.stream
    return ours.remoteAddress === theirs.remoteAddress && ours.remotePort === theirs.remotePort
  }
}

/** A failure told elsewhere: a connect (the 'error' event), a PING (it proves nothing; the lease says the rest). */
function ignore (): void {}

/**
 * What the log hears of the cache: one warning when it stops answering (its lease ran out, or its
 * connection closed), one info line when it answers again.
 */
export function cacheLog (log: FastifyBaseLogger): (event: SessionCacheEvent) => void {
  let stopped = false
  return function logCacheChange ({ state, reason }) {
    if (state === 'stopped') {
      stopped = true
      const why = reason === 'lease' ? 'Redis has not proved its invalidation connection alive within the lease' : 'its connection to Redis closed'
      log.warn(logBindings, `fastify-session-redis: the session cache stopped answering: ${why}; reads go to Redis`)
    } else if (state === 'answering' && stopped) {
      stopped = false
      log.info(logBindings, 'fastify-session-redis: the session cache answers again')
    }
  }
}
