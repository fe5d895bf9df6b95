import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import type { SessionCacheEvent } from '../../types/index.js'
import type { LocalCache } from '../model/local-cache.js'
import { logBindings } from '../model/errors.js'
import { addressOf } from './outage.js'

const CHANNEL = '__redis__:invalidate'

export interface InvalidationOptions {
  /** The data client; the invalidation connection is its duplicate. */
  client: Redis
  /** The session keys' prefix: the keys tracked. */
  prefix: string
  cache: LocalCache
  /** ms: a PING goes out every quarter of it. */
  lease: number
  log: FastifyBaseLogger
}

/**
 * The local cache's own connection to Redis, which the plugin owns: Redis tracks every key under
 * `prefix` for it (BCAST) and tells it, as pub/sub messages (RESP2) on `__redis__:invalidate`, of every
 * change any client makes. Its PINGs, answered on the same socket after every invalidation Redis
 * sent before them, are the cache's proof that it has heard of every change up to when they were sent.
 */
export class Invalidations {
  readonly #client: Redis
  readonly #connection: Redis
  readonly #prefix: string
  /** The prefix's length in bytes, where a key's id starts. */
  readonly #idStart: number
  readonly #cache: LocalCache
  readonly #log: FastifyBaseLogger
  readonly #timer: NodeJS.Timeout
  readonly #address: string
  /** Why the connection last failed, until it is ready again: logged once. */
  #failure: string | undefined
  #pinging = false
  #closed = false

  constructor ({ client, prefix, cache, lease, log }: InvalidationOptions) {
    this.#client = client
    this.#cache = cache
    this.#log = log
    // the keys as Redis names them: ioredis puts its own keyPrefix (default '') before the plugin's
    this.#prefix = [client.options.keyPrefix, prefix].join('')
    this.#idStart = Buffer.byteLength(this.#prefix)
    this.#address = addressOf(client)
    // RESP2 (ioredis 6 speaks RESP3 by default, and drops the push frames RESP3 carries invalidations in);
    // subscribing again is done here, after tracking is on: subscribed, the connection takes no CLIENT command
    this.#connection = client.duplicate({ protocol: 2, autoResubscribe: false, enableOfflineQueue: false, lazyConnect: true, maxRetriesPerRequest: null })
    const connection = this.#connection
    connection.on('ready', () => { this.#ready() })
    connection.on('close', () => { if (!this.#closed) cache.lost('connection') })
    connection.on('error', (err: Error) => { this.#failed(err.message) })
    connection.on('messageBuffer', (_channel: Buffer, keys: Buffer[] | null) => { this.#message(keys) })
    this.#timer = setInterval(() => { this.#ping() }, Math.max(1, Math.floor(lease / 4)))
    this.#timer.unref()
  }

  /** Connects; the cache answers once tracking is on and a PING came back. */
  start (): void {
    // a failed connect is reported through the 'error' event; ioredis goes on reconnecting
    this.#connection.connect().catch(ignore)
  }

  /** Closes the connection; never waits for a Redis that does not answer. */
  close (): void {
    this.#closed = true
    clearInterval(this.#timer)
    this.#connection.disconnect()
  }

  #ready (): void {
    const cache = this.#cache
    // a new connection: a new client id, tracking off, and any invalidation since the last one lost
    cache.lost('ready')
    const epoch = cache.epoch
    const connection = this.#connection
    if (this.#failure !== undefined) this.#log.info(logBindings, `fastify-session-redis: the session cache's connection to Redis at ${this.#address} is ready again`)
    this.#failure = undefined
    connection.client('ID')
      .then((id) => connection.call('CLIENT', 'TRACKING', 'ON', 'REDIRECT', String(id), 'BCAST', 'PREFIX', this.#prefix))
      .then(() => connection.subscribe(CHANNEL))
      .then(() => {
        cache.trackingOn(epoch)
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

  /** One PING at a time: a stalled connection gets no more, and the lease runs out. */
  #ping (): void {
    const cache = this.#cache
    // notes a lease run out even while no read asks
    cache.answering()
    if (this.#pinging || !cache.tracking) return
    const epoch = cache.epoch
    const sentAt = performance.now()
    this.#pinging = true
    this.#connection.ping().then(() => { if (this.#sameServer()) cache.proven(epoch, sentAt) }, ignore).finally(() => { this.#pinging = false })
  }

  /**
   * Whether the data connection talks to the server this one heard from: invalidations of another
   * server (a Sentinel failover that one connection followed before the other) prove nothing.
   */
  #sameServer (): boolean {
    const ours = this.#connection.stream
    // undefined until the data connection first connects
    const theirs = this.#client.stream as typeof ours | undefined
    return theirs !== undefined && ours.remoteAddress === theirs.remoteAddress && ours.remotePort === theirs.remotePort
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
