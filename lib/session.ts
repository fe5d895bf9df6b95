import type { FastifyReply } from 'fastify'
import type { Session, SessionCookieOptions, SessionOrigin, SessionRegenerateEvent } from '../types/index.js'
import { cookieOverrides, type CookieSettings } from './options.js'
import type { LoadedText } from './store.js'
import type { Written } from './writer.js'
import { saveDocument, type SessionContext } from './context.js'
import { keyExpiry, secondsLeft, type KeyExpiry } from './expiry.js'
import { newId, type CookieId } from './cookie.js'
import { SessionMoved, aliasText, isAlias, successorOf } from './rotation.js'
import { applyOperation, newDocument, parseDocument, serializeDocument, type SessionDocument } from './document.js'
import { WorkingDocument } from './working-document.js'
import { errors } from './errors.js'
import { SessionApi, logBindings } from './session-api.js'
import { channels, hintOf } from './channels.js'

export const kFinish = Symbol('fastify-session-redis.finish')
export const kSetCookie = Symbol('fastify-session-redis.set-cookie')

/**
 * The session of one request (or of one `fromHeaders` call): its working document, its id, and
 * what the response must say of it.
 */
export class RedisSession extends SessionApi implements Session {
  readonly #ctx: SessionContext
  // private fields behind getters: an own property would be taken for session data
  readonly #origin: SessionOrigin
  readonly #work: WorkingDocument
  /** Minted on first use: a request that never touches its fresh session pays nothing for it. */
  #id: string | undefined
  /** `#id` as Redis knows it (hashed with `hashIds`), worked out once, when first needed. */
  #storedId: string | undefined
  /** The stored version this request builds on; 0 when not stored yet. */
  #base = 0
  #expiresAt = 0
  /** Must be written even without operations (regenerated with data kept). */
  #mustWrite = false
  /** Send Set-Cookie with the current id at the end of the request. */
  #sendCookie = false
  /** The client holds the cookie of a session this request destroyed or regenerated. */
  #clearCookie = false
  #touched = false
  /** The stored id of the id this request came with, when it led here as an alias of a rotated-away id. */
  #via: string | undefined
  /** Cookie attributes set by `options()` for this response. */
  #cookieOptions: Partial<CookieSettings> | undefined

  private constructor (ctx: SessionContext, origin: SessionOrigin) {
    super()
    this.#ctx = ctx
    this.#origin = origin
    const doc = this.#blank()
    this.#work = new WorkingDocument(doc, this, MEMBERS, ctx.schema)
    this.#expiresAt = this.#expiryOf(doc)
  }

  /** A new, empty session that costs nothing until it is written. */
  static fresh (ctx: SessionContext, origin: SessionOrigin): RedisSession {
    return new RedisSession(ctx, origin)
  }

  /** The stored session the cookie names, or a fresh one (with a new id) when there is none. */
  static load (ctx: SessionContext, origin: SessionOrigin, cookie: CookieId): Promise<RedisSession> {
    const session = new RedisSession(ctx, origin)
    return session.#load(cookie.id, cookie.storedId, true).then((found) => {
      if (!found) return session
      // a persistent cookie's Max-Age follows the expiry that a rolling read just pushed forward
      session.#sendCookie ||= cookie.renew || (ctx.config.rolling && (ctx.config.cookie.maxAge !== undefined || session.isPersistent))
      const { rotateEvery } = ctx.config
      if (rotateEvery === undefined || Date.now() - session.#work.doc.c < rotateEvery * 1000) return session
      return session.#rotate().then(() => session)
    })
  }

  protected get work (): WorkingDocument { return this.#work }
  protected get origin (): SessionOrigin { return this.#origin }

  get id (): string {
    this.#id ??= newId(this.#ctx.config.idGenerator, this.#origin)
    return this.#id
  }

  /** The id under which the store keeps this session: every store call takes it, never `id`. */
  get #redisId (): string {
    this.#storedId ??= this.#ctx.storedIdOf(this.id)
    return this.#storedId
  }

  get sessionId (): string { return this.id }
  get isNew (): boolean { return this.#base === 0 }
  get createdAt (): number { return this.#work.doc.c }
  get expiresAt (): number { return this.#expiresAt }
  get isPersistent (): boolean { return this.#work.doc.p === 1 }

  isModified (): boolean {
    this.#work.pull()
    return this.#work.ops.length > 0 || this.#mustWrite
  }

  setTtl (seconds: number): void {
    this.#work.ttl(seconds)
    this.#expiresAt = this.#expiryOf(this.#work.doc)
  }

  rememberMe (remember = true): void {
    // a stored session's cookie changes kind in this response; a new one's is sent once it is stored
    if (this.#work.persist(remember)) this.#sendCookie ||= this.#base !== 0
  }

  touch (): void {
    this.#touched = true
    if (this.#base === 0) return
    this.#expiresAt = this.#expiryOf(this.#work.doc)
    this.#sendCookie ||= this.isPersistent
  }

  options (options: SessionCookieOptions & Record<string, unknown>): void {
    const overrides = cookieOverrides(options)
    if (overrides === undefined) return
    this.#cookieOptions = { ...this.#cookieOptions, ...overrides }
    this.#sendCookie ||= this.#base !== 0
  }

  /**
   * What the end of the request must do in Redis: a save when something changed (or an untouched
   * new session is to be stored), a TTL refresh after `touch()` without rolling; null when nothing.
   */
  [kFinish] (): Promise<unknown> | null {
    const { config, store } = this.#ctx
    this.#work.pull()
    if (this.isModified() || (this.#base === 0 && config.saveUninitialized)) return this.#save().then((written) => { this.#stored(written) })
    if (this.#touched && !config.rolling && this.#base !== 0) return store.expire(this.#redisId, this.#keyExpiry(this.#work.doc))
    return null
  }

  /** Sets or clears the cookie, when the response must. */
  [kSetCookie] (reply: FastifyReply): void {
    const { cookie } = this.#ctx
    if (this.#sendCookie) cookie.write(this.#origin, reply, this.id, secondsLeft(this.#work.doc, Date.now()), this.#persistFor(), this.#cookieOptions)
    else if (this.#clearCookie) cookie.clear(this.#origin, reply)
  }

  /** What `kSetCookie` would send, as a Set-Cookie header value; for sessions outside a request (`DetachedSession`). */
  setCookieHeader (): string | undefined {
    const { cookie } = this.#ctx
    if (this.#sendCookie) return cookie.header(this.#origin, this.id, secondsLeft(this.#work.doc, Date.now()), this.#persistFor(), this.#cookieOptions)
    if (this.#clearCookie) return cookie.clearHeader(this.#origin)
    return undefined
  }

  /** A remembered session's cookie lives as long as the session would if the client went quiet now. */
  #persistFor (): number | undefined {
    return this.#work.doc.p === 1 ? Math.ceil((this.#expiresAt - Date.now()) / 1000) : undefined
  }

  /**
   * Loads `id` (stored as `storedId`); resolves whether it holds a usable session (otherwise this one starts over, fresh).
   * An id rotated away less than the grace window ago leads to its successor, once.
   */
  #load (id: string, storedId: string, follow: boolean): Promise<boolean> {
    const { store, config } = this.#ctx
    const now = Date.now()
    // the clock is read only while someone listens (README "Events")
    const started = channels.load.hasSubscribers ? performance.now() : -1
    return store.load(storedId, now, config.ttl, config.rolling).then((loaded) => {
      if (loaded !== null && isAlias(loaded.text)) return this.#loadSuccessor(id, storedId, loaded.text, follow)
      const outcome = this.#adopt(id, storedId, loaded, now)
      if ((outcome === 'missing' || outcome === 'expired') && channels.expired.hasSubscribers) {
        channels.expired.publish({ idHint: hintOf(storedId), reason: outcome === 'missing' ? 'missing' : 'deadline' })
      }
      let ready: Promise<boolean> | boolean = outcome === 'found'
      if (outcome === 'invalid' || outcome === 'expired') {
        ready = store.remove(storedId).then(() => {
          this.#startOver()
          return false
        })
      // a rolling read set the configured TTL; a session's own TTL or a near deadline needs another
      } else if (outcome === 'refresh') ready = store.expire(storedId, this.#keyExpiry(this.#work.doc)).then(() => true)
      if (started < 0) return ready
      return Promise.resolve(ready).then((found) => {
        channels.load.publish({
          idHint: hintOf(storedId),
          outcome: outcome === 'refresh' ? 'found' : outcome,
          version: found ? this.#base : 0,
          bytes: found && loaded !== null ? Buffer.byteLength(loaded.text) : 0,
          durationMs: performance.now() - started
        })
        return found
      })
    })
  }

  /** `oldId` (stored as `oldStoredId`) holds `alias`: the alias is decrypted with the raw old id. */
  #loadSuccessor (oldId: string, oldStoredId: string, alias: string, follow: boolean): Promise<boolean> {
    const next = follow ? successorOf(alias, oldId) : undefined
    if (next === undefined) {
      this.#startOver()
      return Promise.resolve(false)
    }
    const { store, config } = this.#ctx
    // the client gets the new id in its cookie
    this.#sendCookie = true
    this.#via = oldStoredId
    const ended = config.rolling ? store.endAliasAt(oldStoredId, next.until) : Promise.resolve()
    return Promise.all([ended, this.#load(next.id, this.#ctx.storedIdOf(next.id), false)]).then(([, found]) => found)
  }

  /** Moves this loaded session to a new id, the old one becoming an alias for the grace window. */
  async #rotate (): Promise<void> {
    const { config, store, stats, storedIdOf } = this.#ctx
    const oldId = this.id
    const now = Date.now()
    const doc = { ...this.#work.doc, c: now }
    const successor = newId(config.idGenerator, this.#origin)
    const successorStored = storedIdOf(successor)
    const grace = config.rotateGrace * 1000
    // in ms, to the same instant a save would give the key (never past the absolute deadline)
    const ttl = Math.max(1, keyExpiry(doc, config.ttl, now).at - now)
    // keyed by stored ids; the alias itself is sealed with the raw old id, which only the client holds
    const moved = await store.rotate(this.#redisId, doc.v, successorStored, serializeDocument(doc), ttl, aliasText(oldId, successor, now + grace), grace)
    // lost to a save or another rotation meanwhile: this request goes on as it is, the next one rotates
    if (!moved) return
    stats.rotated++
    this.#work.replace(doc)
    this.#id = successor
    this.#storedId = successorStored
    this.#sendCookie = true
  }

  /** Takes a loaded text as this session's state, and says what Redis must still be told. */
  #adopt (id: string, storedId: string, loaded: LoadedText | null, now: number): 'found' | 'missing' | 'invalid' | 'expired' | 'refresh' {
    const { config, schema, stats } = this.#ctx
    if (loaded === null) {
      this.#startOver()
      return 'missing'
    }
    const doc = parseDocument(loaded.text)
    const problem = typeof doc === 'string' ? doc : schema?.mismatch(doc.d)
    if (problem !== undefined) this.#origin.log.warn(logBindings, `fastify-session-redis: discarded a stored session: ${problem}`)
    if (typeof doc === 'string' || problem !== undefined) return 'invalid'
    // past its absolute deadline: an ordinary end, deleted without a warning
    if (doc.a <= now) return 'expired'
    stats.loaded++
    this.#work.replace(doc)
    this.#id = id
    this.#storedId = storedId
    this.#base = doc.v
    this.#mustWrite = false
    if (!config.rolling) {
      this.#expiresAt = Math.min(doc.a, now + loaded.pttl)
      return 'found'
    }
    const expiry = this.#keyExpiry(doc)
    this.#expiresAt = expiry.at
    return expiry.mode === 'PX' && expiry.value === config.ttl * 1000 ? 'found' : 'refresh'
  }

  protected async regenerateNow (keep: readonly string[] | undefined): Promise<void> {
    this.#work.pull()
    const carried = keep !== undefined && keep.length > 0
    const wasStored = this.#base !== 0
    // a stored id, as every event carries
    const previous = wasStored ? this.#redisId : undefined
    let doc = this.#work.doc
    if (wasStored) {
      // GETDEL: changes other requests saved since this one loaded come along, and the old id dies at once
      const stored = await this.#ctx.store.take(this.#redisId)
      const parsed = stored === null ? stored : parseDocument(stored)
      if (parsed !== null && typeof parsed !== 'string') {
        for (const op of this.#work.ops) applyOperation(parsed, op)
        doc = parsed
      } else if (carried) {
        // ended meanwhile (destroyed, regenerated, expired): carrying data to a new id would revive it
        this.#startOver()
        throw new errors.FST_REDIS_SESSION_GONE()
      }
    }
    const fresh = this.#blank()
    for (const key of keep ?? []) if (Object.hasOwn(doc.d, key)) fresh.d[key] = doc.d[key]
    this.#startOver(fresh)
    this.#id = newId(this.#ctx.config.idGenerator, this.#origin)
    const kept = Object.keys(fresh.d).length
    this.#mustWrite = kept > 0
    if (channels.regenerate.hasSubscribers) {
      const event: SessionRegenerateEvent = { idHint: hintOf(this.#redisId), kept }
      if (previous !== undefined) event.previousHint = hintOf(previous)
      channels.regenerate.publish(event)
    }
    // the browser's cookie names a deleted session: replaced once this one is written, else cleared
    this.#clearCookie = wasStored
  }

  protected async reloadNow (): Promise<void> {
    if (this.#base === 0) this.#startOver()
    else await this.#load(this.id, this.#redisId, true)
  }

  protected async destroyNow (): Promise<void> {
    if (this.#base !== 0) {
      const { store, storedIdOf } = this.#ctx
      const held = await store.take(this.#redisId)
      // rotated away meanwhile: the successor is this session too
      const next = held !== null && isAlias(held) ? successorOf(held, this.id) : undefined
      if (next !== undefined) await store.remove(storedIdOf(next.id))
      if (this.#via !== undefined) await store.remove(this.#via)
      this.#ctx.stats.destroyed++
      if (channels.destroy.hasSubscribers) channels.destroy.publish({ idHint: hintOf(this.#redisId), by: 'session' })
      this.#clearCookie = true
    }
    this.#startOver()
  }

  protected async saveNow (): Promise<void> {
    const written = await this.#save()
    this.#stored(written)
    // merged with other requests' changes: the rest of this request sees the stored state
    if (written.doc !== this.#work.doc) this.#work.replace(parseDocument(written.text) as SessionDocument)
  }

  #save (): Promise<Written> {
    try {
      this.#work.pull()
      return saveDocument(this.#ctx, this.#redisId, this.#base, this.#work, this.#origin).catch((err: Error) => {
        if (err instanceof SessionMoved) return this.#saveToSuccessor(err.alias)
        throw err
      })
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** The id was rotated away while this request held it: its changes go to the successor instead. */
  async #saveToSuccessor (alias: string): Promise<Written> {
    const next = successorOf(alias, this.id)
    const nextStored = next === undefined ? undefined : this.#ctx.storedIdOf(next.id)
    const loaded = nextStored === undefined ? null : await this.#ctx.store.load(nextStored, Date.now(), this.#ctx.config.ttl, false)
    const doc = loaded === null ? loaded : parseDocument(loaded.text)
    if (next === undefined || doc === null || typeof doc === 'string') throw new errors.FST_REDIS_SESSION_GONE()
    const ops = this.#work.ops
    for (const op of ops) applyOperation(doc, op)
    this.#work.replace(doc)
    this.#work.ops = ops
    this.#id = next.id
    this.#storedId = nextStored
    this.#base = doc.v
    this.#sendCookie = true
    return await saveDocument(this.#ctx, this.#redisId, doc.v, this.#work, this.#origin)
  }

  /** What a successful write changes: the stored version to build on, and the cookie of a new session. */
  #stored (written: Written): void {
    if (this.#base === 0) {
      this.#ctx.stats.created++
      if (channels.create.hasSubscribers) channels.create.publish({ idHint: hintOf(this.#redisId), bytes: Buffer.byteLength(written.text) })
      this.#sendCookie = true
      this.#clearCookie = false
    }
    // the write set a new expiry, which a persistent cookie follows
    if (written.doc.p === 1) this.#sendCookie = true
    this.#base = written.version
    this.#work.ops = []
    this.#mustWrite = false
    this.#expiresAt = written.expiresAt
  }

  /** Becomes a new, unsaved session (`doc`, else an empty one) whose id is minted when first needed. */
  #startOver (doc: SessionDocument = this.#blank()): void {
    this.#work.replace(doc)
    this.#id = undefined
    this.#storedId = undefined
    this.#base = 0
    this.#mustWrite = false
    this.#sendCookie = false
    this.#expiresAt = this.#expiryOf(doc)
  }

  #blank (): SessionDocument {
    return newDocument(Date.now(), this.#ctx.config.absoluteTtl)
  }

  #keyExpiry (doc: SessionDocument): KeyExpiry {
    return keyExpiry(doc, this.#ctx.config.ttl, Date.now())
  }

  /** When the session would expire if written or refreshed now: epoch ms. */
  #expiryOf (doc: SessionDocument): number {
    return this.#keyExpiry(doc).at
  }
}

/** The names of the session's own members: data keys so named are not mirrored as properties. */
const MEMBERS: ReadonlySet<string> = new Set([
  ...Object.getOwnPropertyNames(RedisSession.prototype),
  ...Object.getOwnPropertyNames(SessionApi.prototype),
  ...Object.getOwnPropertyNames(Object.prototype)
])
