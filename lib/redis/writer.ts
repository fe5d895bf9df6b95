import type { SessionStore } from './store.js'
import type { SessionStats } from '../model/stats.js'
import type { SessionSchema } from '../model/schema.js'
import { applyOperation, copyDocument, parseDocument, serializeDocument, unserializable, type Operation, type SessionDocument } from '../model/document.js'
import { keyExpiry, type KeyExpiry } from '../model/expiry.js'
import { errors } from '../model/errors.js'
import { SessionMoved, isAlias } from '../model/alias.js'
import { channels, hintOf } from '../model/channels.js'

/** What a request hands over to be saved. */
export interface WriteRequest {
  /** The stored version the request started from; 0 when it was never stored. */
  base: number
  /** The request's working document: its base with `ops` applied. */
  doc: SessionDocument
  ops: Operation[]
}

export interface Written {
  version: number
  text: string
  /** The object that was serialized: the caller's own `doc` only on the uncontended path. */
  doc: SessionDocument
  /** When the key expires (epoch ms). */
  expiresAt: number
}

export interface WriterOptions {
  store: SessionStore
  /** The configured idle TTL, s (`ttl`). */
  ttl: number
  /** How long a save may keep retrying, ms (`timeout`). */
  timeout: number
  /** The largest document written, in bytes of UTF-8 (`maxBytes`). */
  maxBytes: number
  stats: SessionStats
  /** Checked again once other requests' changes were merged in. */
  schema: SessionSchema | undefined
}

/** Called once with what was written, or why nothing was. */
export type WriteDone = (outcome: Written | Error) => void

// Waiter and Lane are classes, not object literals: V8 would pretenure literals made under early load (docs/performance.md).

/** One request's save, waiting in its lane. */
class Waiter implements WriteRequest {
  readonly base: number
  readonly doc: SessionDocument
  readonly ops: Operation[]
  readonly done: WriteDone

  constructor (request: WriteRequest, done: WriteDone) {
    this.base = request.base
    this.doc = request.doc
    this.ops = request.ops
    this.done = done
  }
}

/** The saves of one session id in this process: run one batch at a time, newest state kept. */
class Lane {
  readonly waiting: Waiter[]
  latest: { version: number, text: string } | undefined = undefined

  constructor (first: Waiter) {
    // Array.of, not [first]: an array literal has allocation-site feedback too
    this.waiting = Array.of(first)
  }
}

// The pause before each retry after the second attempt: random in [0, 2^attempt ms) (full jitter),
// at most this long, so that processes that keep colliding spread out over time
const MAX_PAUSE_MS = 100

/**
 * Saves sessions without losing concurrent changes. Within this process, saves of one id are
 * grouped: every request waiting while a save is in flight is merged into the next one write.
 * Across processes, the save script writes only over the version a writer started from; on a
 * conflict it returns the stored document and the batch's operations are replayed onto it, again
 * and again until `timeout` ms have passed since the first attempt.
 */
export class SessionWriter {
  readonly #lanes = new Map<string, Lane>()
  readonly #store: SessionStore
  readonly #ttl: number
  readonly #timeout: number
  readonly #maxBytes: number
  readonly #stats: SessionStats
  readonly #schema: SessionSchema | undefined

  constructor ({ store, ttl, timeout, maxBytes, stats, schema }: WriterOptions) {
    this.#store = store
    this.#ttl = ttl
    this.#timeout = timeout
    this.#maxBytes = maxBytes
    this.#stats = stats
    this.#schema = schema
  }

  /** `done` gets the outcome; a callback rather than a promise, one less promise and tick per save. */
  write (id: string, request: WriteRequest, done: WriteDone): void {
    const waiter = new Waiter(request, done)
    const lane = this.#lanes.get(id)
    if (lane !== undefined) {
      lane.waiting.push(waiter)
      return
    }
    const fresh = new Lane(waiter)
    this.#lanes.set(id, fresh)
    this.#drain(id, fresh)
  }

  /** Commits what waits in the lane, batch after batch, and closes the lane once it is empty. */
  #drain (id: string, lane: Lane): void {
    const batch = lane.waiting.splice(0)
    if (batch.length === 0) {
      this.#lanes.delete(id)
      return
    }
    const next = (): void => { this.#drain(id, lane) }
    // #commit settles every request of its batch and does not reject; were it to, the lane still moves on
    this.#commit(id, lane, batch).then(next, next)
  }

  /** Picks the newest state to build on and which operations still have to be applied to it. */
  #start (lane: Lane, batch: Waiter[]): { doc: SessionDocument, expected: number, replay: Waiter[] } {
    const newest = batch.reduce((a, b) => (b.base > a.base ? b : a))
    const latest = lane.latest
    if (latest !== undefined && latest.version > newest.base) {
      return { doc: parseDocument(latest.text) as SessionDocument, expected: latest.version, replay: batch }
    }
    if (batch.length === 1) return { doc: newest.doc, expected: newest.base, replay: [] }
    // a private copy: if the batch has to be split, no request's own document was touched
    return { doc: copyDocument(newest.doc), expected: newest.base, replay: batch.filter(w => w !== newest) }
  }

  /**
   * Why a document may not be written: too large, or (once other requests' operations were merged
   * into it) no longer matching the schema, which each request checked only against its own view.
   */
  #refusal (doc: SessionDocument, text: string, merged: boolean): Error | undefined {
    // a UTF-16 unit is at most 3 bytes of UTF-8: a short text fits without being measured
    if (text.length * 3 > this.#maxBytes) {
      const bytes = Buffer.byteLength(text)
      if (bytes > this.#maxBytes) return new errors.FST_REDIS_SESSION_TOO_LARGE(bytes, this.#maxBytes)
    }
    return merged ? this.#schema?.mismatchError(doc.d) : undefined
  }

  /**
   * A document that may not be written fails its request; a batch's merge is split instead, each
   * request given its own write, so that only the culprit fails.
   */
  #refuse (id: string, lane: Lane, batch: Waiter[], refusal: Error): Promise<void> | void {
    if (batch.length === 1) return settleBatch(batch, refusal)
    lane.waiting.unshift(...batch.slice(1))
    return this.#commit(id, lane, batch.slice(0, 1))
  }

  /** Settles every waiter of the batch; never throws. */
  async #commit (id: string, lane: Lane, batch: Waiter[]): Promise<void> {
    let { doc, expected, replay } = this.#start(lane, batch)
    const started = performance.now()
    let attempt = 0
    let elapsed = 0
    while (elapsed < this.#timeout) {
      attempt++
      const now = Date.now()
      let text: string
      let expiry: KeyExpiry
      try {
        for (const waiter of replay) for (const op of waiter.ops) applyOperation(doc, op)
        doc.v = expected + 1
        text = serializeDocument(doc)
        const refusal = this.#refusal(doc, text, replay.length > 0)
        if (refusal !== undefined) return this.#refuse(id, lane, batch, refusal)
        expiry = keyExpiry(doc, this.#ttl, now)
      } catch (err) {
        // an increment that overflows once merged (coded already), or a value changed in place
        // after set() into one JSON cannot hold: refused like any document that may not be written
        return this.#refuse(id, lane, batch, isCoded(err) ? err : unserializable(doc, err))
      }
      if (expiry.at <= now) return settleBatch(batch, new errors.FST_REDIS_SESSION_GONE())
      let result
      try {
        result = await this.#store.save(id, expected, text, expiry, this.#ttl)
      } catch (err) {
        return settleBatch(batch, err as Error)
      }
      if (result.status === 'saved') {
        lane.latest = { version: doc.v, text }
        this.#stats.saved += batch.length
        return settleBatch(batch, undefined, { version: doc.v, text, doc, expiresAt: expiry.at })
      }
      if (result.status === 'gone') return settleBatch(batch, new errors.FST_REDIS_SESSION_GONE())
      // rotated meanwhile: each request follows the alias itself, with its own operations
      if (isAlias(result.current)) return settleBatch(batch, new SessionMoved(result.current))
      // a new session's id is already stored: never merge it into another session
      if (expected === 0) return settleBatch(batch, new errors.FST_REDIS_SESSION_BAD_ID())
      this.#stats.conflicts++
      if (channels.conflict.hasSubscribers) channels.conflict.publish({ idHint: hintOf(id), attempt, requests: batch.length })
      const current = parseDocument(result.current)
      if (typeof current === 'string') return settleBatch(batch, new errors.FST_REDIS_SESSION_GONE())
      doc = current
      expected = current.v
      replay = batch
      elapsed = performance.now() - started
      // lost again: other processes are writing this session too; a random pause spreads the retries
      if (attempt > 1 && elapsed < this.#timeout) await pause(Math.min(Math.random() * Math.min(2 ** attempt, MAX_PAUSE_MS), this.#timeout - elapsed))
    }
    settleBatch(batch, new errors.FST_REDIS_SESSION_CONFLICT(attempt, Math.round(elapsed)))
  }
}

/** One of the plugin's own errors (FST_REDIS_SESSION_…), not one that a value threw. */
function isCoded (err: unknown): err is Error {
  return err instanceof Error && String((err as Error & { code?: unknown }).code).startsWith('FST_REDIS_SESSION_')
}

function pause (ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}

/** Every waiter hears the outcome, even when an earlier one's callback throws. */
function settleBatch (batch: Waiter[], err: Error | undefined, written?: Written): void {
  for (const waiter of batch) {
    try {
      waiter.done(err ?? written as Written)
    } catch (thrown) {
      process.emitWarning(thrown as Error)
    }
  }
}
