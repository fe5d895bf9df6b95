import type { FastifyBaseLogger, FastifyError } from 'fastify'
import type { SessionOrigin, SessionSaveEvent } from '../../types/index.js'
import type { LoadedText, SessionStore } from '../redis/store.js'
import type { SessionWriter, Written } from '../redis/writer.js'
import type { UserIndex } from '../redis/user-index.js'
import type { SessionConfig } from '../model/settings.js'
import type { SessionSchema } from '../model/schema.js'
import type { SessionStats } from '../model/stats.js'
import type { WorkingDocument } from '../model/working-document.js'
import { defaultIdGenerator, idsOf, isValidId, type SessionIds } from '../model/ids.js'
import { SessionMoved, aliasText, isAlias, successorOf } from '../model/alias.js'
import { keyExpiry, liveDocument, type KeyExpiry } from '../model/expiry.js'
import { applyOperation, newDocument, parseDocument, serializeDocument, type Operation, type SessionDocument } from '../model/document.js'
import { errors, logBindings } from '../model/errors.js'
import { channels, hintOf } from '../model/channels.js'

// The one home of a stored session's life, as a session (or the admin manager) asks for it: load
// (following a rotation's alias), save (following one met on the way), rotate, take before a
// regenerate, refresh, destroy. The session applies what comes back; only this file decides
// what Redis is told, through the store, the writer and the user index.

/** A stored session that a request goes on from. */
export interface Found {
  ids: SessionIds
  doc: SessionDocument
  /** When its key expires now, epoch ms. */
  expiresAt: number
  /** The stored id the request came with, when it led here as the alias of a rotated-away id. */
  via?: string
}

/** A session under a new id. */
export interface Moved { ids: SessionIds, doc: SessionDocument }

/** What a loaded text is, and what Redis must still be told of it. */
type Examined =
  | { outcome: 'missing' } | { outcome: 'invalid' } | { outcome: 'expired' }
  | { outcome: 'found', doc: SessionDocument, expiresAt: number }
  | { outcome: 'refresh', doc: SessionDocument, expiresAt: number, expiry: KeyExpiry }

export interface RepositoryOptions {
  config: SessionConfig
  store: SessionStore
  writer: SessionWriter
  stats: SessionStats
  /** An id as Redis knows it: hashed with `hashIds` (`storedIdOf` in lib/model/ids.ts). */
  storedIdOf: (id: string) => string
  schema: SessionSchema | undefined
  /** Set with `userKey` or `trackClient`. */
  index: UserIndex | undefined
}

/** The stored sessions of one plugin instance. */
export class SessionRepository {
  readonly #config: SessionConfig
  readonly #store: SessionStore
  readonly #writer: SessionWriter
  readonly #stats: SessionStats
  readonly #storedIdOf: (id: string) => string
  readonly #schema: SessionSchema | undefined
  readonly #index: UserIndex | undefined
  /** The index an admin's destroy tidies: only with `userKey` (`#index` is there for `trackClient` alone too). */
  readonly #userIndex: UserIndex | undefined

  constructor ({ config, store, writer, stats, storedIdOf, schema, index }: RepositoryOptions) {
    this.#config = config
    this.#store = store
    this.#writer = writer
    this.#stats = stats
    this.#storedIdOf = storedIdOf
    this.#schema = schema
    this.#index = index
    this.#userIndex = config.userKey === undefined ? undefined : index
  }

  /** `id` with the id Redis knows it by. */
  idsOf (id: string): SessionIds {
    return idsOf(this.#storedIdOf, id)
  }

  /** New ids for a session of `origin`, from `idGenerator`; FST_REDIS_SESSION_BAD_ID when its id is not of the id format. */
  newIds (origin: SessionOrigin): SessionIds {
    const id = this.#config.idGenerator(origin)
    if (!isValidId(id)) throw new errors.FST_REDIS_SESSION_BAD_ID()
    return idsOf(this.#storedIdOf, id)
  }

  /**
   * Loads the session stored under `ids`; null when there is none to go on from (a broken or ended
   * one is deleted on the way). An id rotated away less than the grace window ago leads to its
   * successor, once (`follow`).
   */
  load (ids: SessionIds, log: FastifyBaseLogger, follow = true): Promise<Found | null> {
    const config = this.#config
    const now = Date.now()
    // the clock is read only while someone listens (README "Events")
    const started = channels.load.hasSubscribers ? performance.now() : -1
    return this.#store.load(ids.storedId, now, config.ttl, config.rolling).then((loaded) => {
      if (loaded !== null && isAlias(loaded.text)) return follow ? this.#followAlias(ids, loaded.text, log) : null
      const seen = this.#examine(loaded, now, log)
      if ((seen.outcome === 'missing' || seen.outcome === 'expired') && channels.expired.hasSubscribers) {
        channels.expired.publish({ idHint: hintOf(ids.storedId), reason: seen.outcome === 'missing' ? 'missing' : 'deadline' })
      }
      const found = this.#conclude(ids, seen)
      if (started < 0) return found
      return Promise.resolve(found).then((result) => {
        channels.load.publish({
          idHint: hintOf(ids.storedId),
          outcome: seen.outcome === 'refresh' ? 'found' : seen.outcome,
          version: result === null ? 0 : result.doc.v,
          bytes: result === null || loaded === null ? 0 : Buffer.byteLength(loaded.text),
          durationMs: performance.now() - started
        })
        return result
      })
    })
  }

  #examine (loaded: LoadedText | null, now: number, log: FastifyBaseLogger): Examined {
    const config = this.#config
    if (loaded === null) return { outcome: 'missing' }
    const doc = parseDocument(loaded.text)
    const problem = typeof doc === 'string' ? doc : this.#schema?.mismatch(doc.d)
    if (problem !== undefined) log.warn(logBindings, `fastify-session-redis: discarded a stored session: ${problem}`)
    if (typeof doc === 'string' || problem !== undefined) return { outcome: 'invalid' }
    // past its absolute deadline: an ordinary end, deleted without a warning
    if (doc.a <= now) return { outcome: 'expired' }
    if (!config.rolling) return { outcome: 'found', doc, expiresAt: Math.min(doc.a, now + loaded.pttl) }
    // a rolling read set the configured TTL; a session's own TTL or a near deadline needs another
    const expiry = keyExpiry(doc, config.ttl, now)
    if (expiry.mode === 'PX' && expiry.value === config.ttl * 1000) return { outcome: 'found', doc, expiresAt: expiry.at }
    return { outcome: 'refresh', doc, expiresAt: expiry.at, expiry }
  }

  /** Tells Redis what the load found out; no promise when there is nothing to tell. */
  #conclude (ids: SessionIds, seen: Examined): Found | null | Promise<Found | null> {
    if (seen.outcome === 'missing') return null
    if (seen.outcome === 'invalid' || seen.outcome === 'expired') return this.#store.remove(ids.storedId).then(() => null)
    this.#stats.loaded++
    const found: Found = { ids, doc: seen.doc, expiresAt: seen.expiresAt }
    return seen.outcome === 'found' ? found : this.#store.expire(ids.storedId, seen.expiry).then(() => found)
  }

  /** `old` holds `alias`, which only the raw old id decrypts. */
  #followAlias (old: SessionIds, alias: string, log: FastifyBaseLogger): Promise<Found | null> {
    const next = successorOf(alias, old.id)
    if (next === undefined) return Promise.resolve(null)
    const ended = this.#config.rolling ? this.#store.endAliasAt(old.storedId, next.until) : undefined
    return Promise.all([ended, this.load(this.idsOf(next.id), log, false)]).then(([, found]) => found === null ? null : { ...found, via: old.storedId })
  }

  /**
   * Saves `work`, a session stored under `ids` at version `base` (0: not stored yet). When the id
   * was rotated away meanwhile, `onMoved` takes the session over to its successor (its working
   * document then holds the successor's, without operations) and this request's operations are
   * saved there instead.
   */
  save (ids: SessionIds, base: number, work: WorkingDocument, origin: SessionOrigin, onMoved: (moved: Moved) => void): Promise<Written> {
    return this.#write(ids.storedId, base, work, origin).catch((err: Error) => {
      if (err instanceof SessionMoved) return this.#saveToSuccessor(err.alias, ids.id, work, origin, onMoved)
      throw err
    })
  }

  async #saveToSuccessor (alias: string, id: string, work: WorkingDocument, origin: SessionOrigin, onMoved: (moved: Moved) => void): Promise<Written> {
    const ops = work.ops
    const moved = await this.#successorForSave(alias, id, ops)
    onMoved(moved)
    work.ops = ops
    return await this.#write(moved.ids.storedId, moved.doc.v, work, origin)
  }

  /** The successor that a save in flight under `id` found `alias` naming, with that save's `ops` applied. */
  async #successorForSave (alias: string, id: string, ops: readonly Operation[]): Promise<Moved> {
    const next = successorOf(alias, id)
    const ids = next === undefined ? undefined : this.idsOf(next.id)
    const loaded = ids === undefined ? null : await this.#store.load(ids.storedId, Date.now(), this.#config.ttl, false)
    const doc = loaded === null ? null : parseDocument(loaded.text)
    if (ids === undefined || doc === null || typeof doc === 'string') throw new errors.FST_REDIS_SESSION_GONE()
    for (const op of ops) applyOperation(doc, op)
    return { ids, doc }
  }

  /** Stores `work` as a new session under a new default id (`app.sessions.create`); returns the id. */
  async create (work: WorkingDocument): Promise<string> {
    const id = defaultIdGenerator()
    await this.#write(this.#storedIdOf(id), 0, work, undefined)
    this.#stats.created++
    return id
  }

  /**
   * Writes a working document of the session stored as `storedId`, built on stored version `base`
   * (joining the user index first when there is one); `origin` is undefined for `app.sessions.create`.
   * The writer takes callbacks, one less promise per save on its batched path; this is the one place
   * where that becomes a promise.
   */
  #write (storedId: string, base: number, work: WorkingDocument, origin: SessionOrigin | undefined): Promise<Written> {
    const write = (): Promise<Written> => new Promise((resolve, reject) => {
      this.#writer.write(storedId, { base, doc: work.doc, ops: work.ops }, (outcome) => {
        if (outcome instanceof Error) reject(outcome)
        else resolve(outcome)
      })
    })
    // the clock is read, and a promise added, only while someone listens (README "Events")
    const started = channels.save.hasSubscribers ? performance.now() : -1
    const saving = this.#index === undefined
      ? write()
      : this.#index.prepare(storedId, base === 0, work.doc, origin).then((meta) => {
        if (meta !== undefined) work.record(meta)
        return write()
      })
    if (started < 0) return saving
    const event = (): SessionSaveEvent => ({ idHint: hintOf(storedId), outcome: 'saved', isNew: base === 0, version: 0, bytes: 0, durationMs: performance.now() - started })
    return saving.then((written) => {
      channels.save.publish({ ...event(), version: written.version, bytes: Buffer.byteLength(written.text) })
      return written
    }, (err: FastifyError) => {
      channels.save.publish({ ...event(), outcome: 'failed', code: err.code })
      throw err
    })
  }

  /**
   * Moves the session stored as `current` (holding `doc`) to a new id, the old key becoming an alias
   * for the grace window; null when a save or another rotation got there first (the next request rotates).
   */
  async rotate (current: SessionIds, doc: SessionDocument, origin: SessionOrigin): Promise<Moved | null> {
    const config = this.#config
    const now = Date.now()
    const moved = { ...doc, c: now }
    const next = this.newIds(origin)
    const grace = config.rotateGrace * 1000
    // in ms, to the same instant a save would give the key (never past the absolute deadline)
    const ttl = Math.max(1, keyExpiry(moved, config.ttl, now).at - now)
    // keyed by stored ids; the alias itself is sealed with the raw old id, which only the client holds
    const done = await this.#store.rotate({
      from: current.storedId,
      version: doc.v,
      to: next.storedId,
      text: serializeDocument(moved),
      ttlMs: ttl,
      alias: aliasText(current.id, next.id, now + grace),
      graceMs: grace
    })
    if (!done) return null
    this.#stats.rotated++
    return { ids: next, doc: moved }
  }

  /** Sets the key's expiry as a write of `doc` now would (`touch()` without rolling). */
  refresh (ids: SessionIds, doc: SessionDocument): Promise<unknown> {
    return this.#store.expire(ids.storedId, keyExpiry(doc, this.#config.ttl, Date.now()))
  }

  /**
   * What a regenerated session starts with: the `keep` keys of its latest state. When it was stored
   * (as `previous`), that is taken with GETDEL, so the old id dies at once and changes other requests
   * saved since this one loaded come along. Null when it ended meanwhile and keys were to be carried:
   * carrying them to a new id would revive it.
   */
  async keptDocument (previous: string | undefined, work: WorkingDocument, keep: readonly string[] | undefined): Promise<SessionDocument | null> {
    const stored = previous === undefined ? undefined : await this.#store.take(previous)
    const fresh = newDocument(Date.now(), this.#config.absoluteTtl)
    if (keep === undefined || keep.length === 0) return fresh
    let latest = work.doc
    if (stored !== undefined) {
      const parsed = stored === null ? null : parseDocument(stored)
      if (parsed === null || typeof parsed === 'string') return null
      for (const op of work.ops) applyOperation(parsed, op)
      latest = parsed
    }
    for (const key of keep) if (Object.hasOwn(latest.d, key)) fresh.d[key] = latest.d[key]
    return fresh
  }

  /** Deletes a session, with its successor when it was rotated away meanwhile, and the alias that led here (`via`). */
  async destroy (ids: SessionIds, via: string | undefined): Promise<void> {
    const store = this.#store
    const held = await store.take(ids.storedId)
    const next = held !== null && isAlias(held) ? successorOf(held, ids.id) : undefined
    if (next !== undefined) await store.remove(this.#storedIdOf(next.id))
    if (via !== undefined) await store.remove(via)
    this.#stats.destroyed++
    if (channels.destroy.hasSubscribers) channels.destroy.publish({ idHint: hintOf(ids.storedId), by: 'session' })
  }

  /** The live document stored under `id`, or undefined; never keeps it alive (`app.sessions.get`). */
  async peek (id: string): Promise<SessionDocument | undefined> {
    const now = Date.now()
    // rolling off: looking at a session must not keep it alive
    const loaded = await this.#store.load(this.#storedIdOf(id), now, this.#config.ttl, false)
    return loaded === null ? undefined : liveDocument(loaded.text, now)
  }

  /** Deletes the session stored under `id` and its user index entry (`app.sessions.destroy`); false when there was none. */
  async destroyById (id: string): Promise<boolean> {
    const storedId = this.#storedIdOf(id)
    const text = await this.#store.take(storedId)
    if (text === null) return false
    this.#stats.destroyed++
    if (channels.destroy.hasSubscribers) channels.destroy.publish({ idHint: hintOf(storedId), by: 'admin' })
    const doc = parseDocument(text)
    if (this.#userIndex !== undefined && typeof doc !== 'string' && doc.u !== undefined) await this.#userIndex.forget(storedId, doc.u)
    return true
  }
}
