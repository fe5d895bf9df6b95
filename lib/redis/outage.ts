import type { FastifyBaseLogger } from 'fastify'
import type { Cluster, Redis } from 'ioredis'
import { logBindings } from '../model/errors.js'

/** Where a connection goes, for the log: host and port (ioredis fills them in), or a Unix socket's path. */
export function addressOf (client: Redis): string {
  const { path, host, port } = client.options
  return path ?? `${String(host)}:${String(port)}`
}

/** Commands that ran out of time in a row, with no reply in between, before Redis counts as stalled. */
export const STALLED_AFTER = 5
/** Connection states in which a command would wait in ioredis' offline queue for a Redis that left. */
const LOST = new Set(['reconnecting', 'close', 'end'])

/**
 * Whether Redis is known to be out of reach, so that commands fail at once instead of each waiting
 * the whole `timeout` (under load, thousands of requests would pile up in memory meanwhile):
 * - the connection was lost and is not ready again (ioredis' `status`, read on every command: no
 *   listener is added to a client the app owns);
 * - or STALLED_AFTER commands in a row ran out of time: then one command is sent every `timeout` ms to
 *   see whether Redis is back, the others fail at once; the first reply ends it.
 */
export class Outage {
  readonly #client: Redis | Cluster
  readonly #pauseMs: number
  readonly #log: FastifyBaseLogger | undefined
  #timeoutsInARow = 0
  /** performance.now() until which nothing is sent; 0 while Redis answers. */
  #pausedUntil = 0
  #lost = false

  constructor (client: Redis | Cluster, timeout: number, log?: FastifyBaseLogger) {
    this.#client = client
    this.#pauseMs = timeout
    this.#log = log
  }

  /** Why a command is not to be sent now, or undefined when it may go. */
  reason (): string | undefined {
    const status = this.#client.status
    if (status === 'ready') this.#lost = false
    else if (LOST.has(status)) this.#lost = true
    // 'connecting' after a loss is one more attempt that may fail as well
    if (this.#lost) return 'Redis is unreachable'
    if (this.#pausedUntil === 0) return undefined
    const now = performance.now()
    if (now < this.#pausedUntil) return 'Redis stopped answering'
    // one command goes out to see whether Redis is back; the others wait for its answer or the next
    this.#pausedUntil = now + this.#pauseMs
    return undefined
  }

  /** A command ran out of time. */
  timedOut (): void {
    if (++this.#timeoutsInARow < STALLED_AFTER) return
    if (this.#pausedUntil === 0) this.#log?.warn(logBindings, `fastify-session-redis: ${this.#timeoutsInARow} Redis commands in a row took longer than the timeout; session requests fail at once for ${this.#pauseMs} ms at a time until Redis answers again`)
    this.#pausedUntil = performance.now() + this.#pauseMs
  }

  /** Redis answered a command (an error reply counts: it is there). */
  answered (): void {
    if (this.#pausedUntil !== 0) this.#log?.info(logBindings, 'fastify-session-redis: Redis answers again')
    this.#timeoutsInARow = 0
    this.#pausedUntil = 0
  }
}
