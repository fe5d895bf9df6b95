import type { FastifyBaseLogger, FastifyError } from 'fastify'
import type { SessionLoadEvent, SessionOrigin, SessionSaveEvent } from '../../types/index.js'
import type { LoadedText, SessionStore } from '../redis/store.js'
import type { SessionWriter, Written } from '../redis/writer.js'
import type { UserIndex } from '../redis/user-index.js'
import type { SessionConfig } from '../model/settings.js'
import type { SessionSchema } from '../model/schema.js'
import type { SessionStats } from '../model/stats.js'
import type { WorkingDocument } from '../model/working-document.js'
import { defaultIdGenerator, idsOf, isValidId, type SessionIds } from '../model/ids.js'
import { SessionMoved, aliasText, isAlias, successorOf, withinGrace } from '../model/alias.js'
import { idleTtlOf, keyExpiry, lastRefreshOf, liveDocument, rotationDue, type KeyExpiry } from '../model/expiry.js'
import type { CacheEntry, LocalCache, Ticket } from '../model/local-cache.js'
import { applyOperation, copyJson, freezeJson, newDocument, parseDocument, serializeDocument, type Operation, type SessionDocument } from '../model/document.js'
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

/** What `#take` deleted: the stored ids of the keys that held something, and the session's document text. */
interface Taken {
  storedIds: string[]
  /** null when the chain ended at a missing key or at an alias this id cannot open. */
  text: string | null
}

/** What a loaded text is, and what Redis must still be told of it. */
type Examined =
  | { outcome: 'missing' } | { outcome: 'invalid' } | { outcome: 'expired' }
  | { outcome: 'found', doc: SessionDocument, text: string, expiresAt: number, refreshDueAt?: number }
  | { outcome: 'refresh', doc: SessionDocument, text: string, expiresAt: number, expiry: KeyExpiry }

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
  /** Set with `cache`. */
  cache?: LocalCache<SessionDocument> | undefined
}

/** A load's text, and, when it may be cached, the ticket taken before its read was sent. */
interface Loaded extends LoadedText {
  ticket?: Ticket
}

/** A local cache entry that may answer a load, its document parsed (frozen: each request gets a copy). */
type Hit = CacheEntry<SessionDocument> & { doc: SessionDocument }

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
  readonly #cache: LocalCache<SessionDocument> | undefined

  constructor ({ config, store, writer, stats, storedIdOf, schema, index, cache }: RepositoryOptions) {
    this.#cache = cache
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
    return Promise.resolve(this.open(ids, log, follow))
  }

  /** `load`, answered without a promise when the local cache holds the session (no Redis, no wait). */
  open (ids: SessionIds, log: FastifyBaseLogger, follow = true): Found | null | Promise<Found | null> {
    const now = Date.now()
    // the clock is read only while someone listens (docs/events-and-metrics.md)
    const started = channels.load.hasSubscribers ? performance.now() : -1
    const read = this.#read(ids.storedId, now)
    if (read instanceof Promise) return read.then((loaded) => this.#opened(ids, loaded, now, started, log, follow))
    // from the local cache: parsed and checked when it was kept, and within every deadline (`#read`)
    this.#stats.loaded++
    const found: Found = { ids, doc: copyJson(read.doc), expiresAt: read.expiresAt }
    return started < 0 ? found : this.#published(ids, 'found', found, read.text, started)
  }

  /** What a load goes on with once its text is read from Redis. */
  #opened (ids: SessionIds, loaded: Loaded | null, now: number, started: number, log: FastifyBaseLogger, follow: boolean): Found | null | Promise<Found | null> {
    if (loaded !== null && isAlias(loaded.text)) return this.#followAlias(ids, loaded.text, log, follow)
    const seen = this.#examine(loaded, now, log)
    if (seen.outcome === 'found' && seen.refreshDueAt !== undefined && loaded?.ticket !== undefined) this.#keep(ids.storedId, loaded.ticket, seen, seen.refreshDueAt, now)
    if ((seen.outcome === 'missing' || seen.outcome === 'expired') && channels.expired.hasSubscribers) {
      channels.expired.publish({ idHint: hintOf(ids.storedId), reason: seen.outcome === 'missing' ? 'missing' : 'deadline' })
    }
    const found = this.#conclude(ids, seen)
    if (started < 0) return found
    return Promise.resolve(found).then((result) => this.#published(ids, seen.outcome === 'refresh' ? 'found' : seen.outcome, result, loaded?.text, started))
  }

  /** Tells the load channel's subscribers what a load started at `started` (performance.now()) found. */
  #published (ids: SessionIds, outcome: SessionLoadEvent['outcome'], result: Found | null, text: string | undefined, started: number): Found | null {
    channels.load.publish({
      idHint: hintOf(ids.storedId),
      outcome,
      version: result === null ? 0 : result.doc.v,
      bytes: result === null || text === undefined ? 0 : Buffer.byteLength(text),
      durationMs: performance.now() - started
    })
    return result
  }

  /**
   * The stored text: from the local cache when it may answer (lease held, within every deadline,
   * no refresh or rotation due), as the cache's entry; else from Redis: a rolling GETEX when the
   * idle expiry is due to be refreshed, a plain read (which the cache may keep) otherwise.
   */
  #read (storedId: string, now: number): Hit | Promise<Loaded | null> {
    const { ttl, rolling } = this.#config
    const cache = this.#cache
    if (cache === undefined) return this.#store.load(storedId, now, ttl, rolling)
    const entry = cache.lookup(storedId, now)
    if (entry !== undefined && now < entry.refreshDueAt && !rotationDue(this.#config, { c: entry.createdAt })) {
      this.#stats.cacheHits++
      // the text parsed and checked when it was kept
      entry.doc ??= freezeJson(parseDocument(entry.text) as SessionDocument)
      return entry as Hit
    }
    this.#stats.cacheMisses++
    // due for a refresh, or saved by this process since its last load (a session written on every
    // request): the rolling read, as without the cache, and nothing kept
    if (rolling && (entry !== undefined || cache.savedSinceLoad(storedId))) return this.#store.load(storedId, now, ttl, true)
    const ticket = cache.ticket()
    return this.#store.load(storedId, now, ttl, false).then((loaded) => loaded === null ? null : { ...loaded, ticket })
  }

  /** Caches what a plain read found (when nothing changed it since, lib/model/local-cache.ts decides). */
  #keep (storedId: string, ticket: Ticket, { doc, text, expiresAt }: { doc: SessionDocument, text: string, expiresAt: number }, refreshDueAt: number, now: number): void {
    this.#cache!.put(storedId, ticket, { text, expiresAt, refreshDueAt, createdAt: doc.c, deadline: doc.a, cachedAt: now })
  }

  /**
   * When the idle expiry of a key expiring at `expiresAt` is due to be pushed forward: `refreshEvery`
   * after its last refresh, sooner for a session whose own TTL (`setTtl`) is shorter than ten times that;
   * never without rolling, or once the key expires at the absolute deadline.
   */
  #refreshDueAt (doc: SessionDocument, expiresAt: number, now: number): number {
    const { ttl, rolling, cache } = this.#config
    const last = rolling ? lastRefreshOf(doc, ttl, expiresAt, now) : undefined
    if (last === undefined) return Infinity
    return last + Math.min(cache!.refreshEvery * 1000, idleTtlOf(doc, ttl) * 100)
  }

  #examine (loaded: Loaded | null, now: number, log: FastifyBaseLogger): Examined {
    const config = this.#config
    if (loaded === null) return { outcome: 'missing' }
    const doc = parseDocument(loaded.text)
    const problem = typeof doc === 'string' ? doc : this.#schema?.mismatch(doc.d)
    if (problem !== undefined) log.warn(logBindings, `fastify-session-redis: discarded a stored session: ${problem}`)
    if (typeof doc === 'string' || problem !== undefined) return { outcome: 'invalid' }
    // past its absolute deadline: an ordinary end, deleted without a warning
    if (doc.a <= now) return { outcome: 'expired' }
    const { text } = loaded
    if (!loaded.rolled) {
      const expiresAt = Math.min(doc.a, now + loaded.pttl)
      if (this.#cache === undefined) return { outcome: 'found', doc, text, expiresAt }
      // with the cache, a plain read finds the idle expiry due to be pushed forward at times
      const refreshDueAt = this.#refreshDueAt(doc, expiresAt, now)
      if (refreshDueAt > now) return { outcome: 'found', doc, text, expiresAt, refreshDueAt }
      const expiry = keyExpiry(doc, config.ttl, now)
      return { outcome: 'refresh', doc, text, expiresAt: expiry.at, expiry }
    }
    // a rolling read set the configured TTL from `now`; a session's own TTL or a near deadline needs another
    const expiry = keyExpiry(doc, config.ttl, now)
    if (expiry.at === now + config.ttl * 1000) return { outcome: 'found', doc, text, expiresAt: expiry.at }
    return { outcome: 'refresh', doc, text, expiresAt: expiry.at, expiry }
  }

  /** Tells Redis what the load found out; no promise when there is nothing to tell. */
  #conclude (ids: SessionIds, seen: Examined): Found | null | Promise<Found | null> {
    if (seen.outcome === 'missing') return null
    if (seen.outcome === 'invalid' || seen.outcome === 'expired') return this.#store.remove(ids.storedId).then(() => null)
    this.#stats.loaded++
    const found: Found = { ids, doc: seen.doc, expiresAt: seen.expiresAt }
    return seen.outcome === 'found' ? found : this.#store.expire(ids.storedId, seen.expiry).then(() => found)
  }

  /**
   * `old` holds `alias`, which only the raw old id decrypts; followed only when `follow` and before the
   * alias's own deadline. That deadline, not the key's TTL, is the grace window: a rolling read, or one
   * run late, can stretch the TTL. Every alias a rolling read reached, followed or not (one reached
   * through another, with `rotateGrace` ≥ `rotateEvery`), is set back to end at its deadline.
   */
  #followAlias (old: SessionIds, alias: string, log: FastifyBaseLogger, follow: boolean): Promise<Found | null> {
    const next = successorOf(alias, old.id)
    if (next === undefined) return Promise.resolve(null)
    const ended = this.#config.rolling ? this.#store.endAliasAt(old.storedId, next.until) : undefined
    if (!follow || !withinGrace(next)) return Promise.resolve(ended).then(() => null)
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
    // the index and client metadata were worked out for the old id: the save to the successor
    // works them out again, so that a user set by this request joins its index under the new id
    const ops = work.ops.filter(op => op.kind !== 'meta')
    const moved = await this.#successorForSave(alias, id, ops)
    onMoved(moved)
    work.ops = ops
    return await this.#write(moved.ids.storedId, moved.doc.v, work, origin)
  }

  /**
   * The successor that a save in flight under `id` found `alias` naming, with that save's `ops`
   * applied; GONE once the grace window is over, as for a load.
   */
  async #successorForSave (alias: string, id: string, ops: readonly Operation[]): Promise<Moved> {
    const next = successorOf(alias, id)
    const ids = next === undefined || !withinGrace(next) ? undefined : this.idsOf(next.id)
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
    // the clock is read, and a promise added, only while someone listens (docs/events-and-metrics.md)
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
    const until = now + config.rotateGrace * 1000
    // the same instant a save would give the key (never past the absolute deadline)
    const expiresAt = Math.max(now + 1, keyExpiry(moved, config.ttl, now).at)
    // the copy already names its user: it joins the index first, as a save would (lib/redis/user-index.ts)
    if (this.#index !== undefined) await this.#index.join(next.storedId, moved)
    // keyed by stored ids; the alias itself is sealed with the raw old id, which only the client holds
    const done = await this.#store.rotate({
      from: current.storedId,
      version: doc.v,
      to: next.storedId,
      text: serializeDocument(moved),
      expiresAt,
      alias: aliasText(current.id, next.id, until),
      until
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
   * Takes (GETDEL) the session stored under `ids` and, while what a key held is a rotation's alias,
   * the successor it names: a session ended through an old id, by a request that loaded it before
   * the rotation or by one that holds only the old id, must not live on under the new one.
   */
  async #take (ids: SessionIds): Promise<Taken> {
    const storedIds: string[] = []
    let { id, storedId } = ids
    let text = await this.#store.take(storedId)
    while (text !== null) {
      storedIds.push(storedId)
      if (!isAlias(text)) break
      const next = successorOf(text, id)
      if (next === undefined) return { storedIds, text: null }
      // each step deletes a key that held an alias: a chain ends, whatever Redis holds
      ;({ id, storedId } = this.idsOf(next.id))
      text = await this.#store.take(storedId)
    }
    return { storedIds, text }
  }

  /**
   * What a regenerated session starts with: the `keep` keys of its latest state. When it was stored
   * (as `previous`), that is taken with GETDEL, so the old id dies at once and changes other requests
   * saved since this one loaded come along; an id rotated away meanwhile leads to its successor,
   * which is taken too. Null when it ended meanwhile and keys were to be carried: carrying them to
   * a new id would revive it.
   */
  async keptDocument (previous: SessionIds | undefined, work: WorkingDocument, keep: readonly string[] | undefined): Promise<SessionDocument | null> {
    const stored = previous === undefined ? undefined : (await this.#take(previous)).text
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
    await this.#take(ids)
    if (via !== undefined) await this.#store.remove(via)
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

  /**
   * Deletes the session stored under `id` and its user index entries (`app.sessions.destroy`); false
   * when there was none. An id rotated away within the grace window: its successor ends too.
   */
  async destroyById (id: string): Promise<boolean> {
    const storedId = this.#storedIdOf(id)
    const { storedIds, text } = await this.#take({ id, storedId })
    if (storedIds.length === 0) return false
    this.#stats.destroyed++
    if (channels.destroy.hasSubscribers) channels.destroy.publish({ idHint: hintOf(storedId), by: 'admin' })
    const doc = text === null ? null : parseDocument(text)
    if (this.#userIndex !== undefined && doc !== null && typeof doc !== 'string' && doc.u !== undefined) await this.#userIndex.forget(storedIds, doc.u)
    return true
  }
}
