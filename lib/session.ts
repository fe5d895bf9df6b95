import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Session, SessionCookieOptions } from '../types/index.js'
import { cookieOverrides, type CookieSettings } from './options.js'
import type { LoadedText } from './store.js'
import type { Written } from './writer.js'
import { saveDocument, type SessionContext } from './context.js'
import { keyExpiry, secondsLeft, type KeyExpiry } from './expiry.js'
import { newId, type CookieId } from './cookie.js'
import { applyOperation, newDocument, parseDocument, type SessionDocument } from './document.js'
import { WorkingDocument } from './working-document.js'
import { errors } from './errors.js'
import { SessionApi, logBindings } from './session-api.js'

export const kFinish = Symbol('fastify-session-redis.finish')
export const kSetCookie = Symbol('fastify-session-redis.set-cookie')

/** The session of one request: its working document, its id, and what the response must say of it. */
export class RedisSession extends SessionApi implements Session {
  readonly #ctx: SessionContext
  // private fields behind getters: an own property would be taken for session data
  readonly #request: FastifyRequest
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
  /** Cookie attributes set by `options()` for this response. */
  #cookieOptions: Partial<CookieSettings> | undefined

  private constructor (ctx: SessionContext, request: FastifyRequest) {
    super()
    this.#ctx = ctx
    this.#request = request
    const doc = this.#blank()
    this.#work = new WorkingDocument(doc, this, MEMBERS, ctx.schema)
    this.#expiresAt = this.#expiryOf(doc)
  }

  /** A new, empty session that costs nothing until it is written. */
  static fresh (ctx: SessionContext, request: FastifyRequest): RedisSession {
    return new RedisSession(ctx, request)
  }

  /** The stored session the cookie names, or a fresh one (with a new id) when there is none. */
  static load (ctx: SessionContext, request: FastifyRequest, cookie: CookieId): Promise<RedisSession> {
    const session = new RedisSession(ctx, request)
    return session.#load(cookie.id, cookie.storedId).then((found) => {
      if (found) session.#sendCookie = cookie.renew || (ctx.config.cookie.maxAge !== undefined && ctx.config.rolling)
      return session
    })
  }

  protected get work (): WorkingDocument { return this.#work }
  protected get request (): FastifyRequest { return this.#request }

  get id (): string {
    this.#id ??= newId(this.#ctx.config.idGenerator, this.#request)
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

  isModified (): boolean {
    this.#work.pull()
    return this.#work.ops.length > 0 || this.#mustWrite
  }

  setTtl (seconds: number): void {
    if (!Number.isSafeInteger(seconds) || seconds < 1) {
      throw new errors.FST_REDIS_SESSION_INVALID_VALUE('(ttl)', 'setTtl needs a whole number of seconds, at least 1')
    }
    this.#work.record({ kind: 'ttl', seconds })
    this.#expiresAt = this.#expiryOf(this.#work.doc)
  }

  touch (): void {
    this.#touched = true
    if (this.#base !== 0) this.#expiresAt = this.#expiryOf(this.#work.doc)
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
    if (this.#sendCookie) cookie.write(this.#request, reply, this.id, secondsLeft(this.#work.doc, Date.now()), this.#cookieOptions)
    else if (this.#clearCookie) cookie.clear(this.#request, reply)
  }

  /** Loads `id` (stored as `storedId`); resolves whether it holds a usable session (otherwise this one starts over, fresh). */
  #load (id: string, storedId: string): Promise<boolean> {
    const { store, config } = this.#ctx
    const now = Date.now()
    return store.load(storedId, now, config.ttl, config.rolling).then((loaded) => {
      const outcome = this.#adopt(id, storedId, loaded, now)
      if (outcome === 'discard') {
        return store.remove(storedId).then(() => {
          this.#startOver()
          return false
        })
      }
      // a rolling read set the configured TTL; a session's own TTL or a near deadline needs another
      if (outcome === 'refresh') return store.expire(storedId, this.#keyExpiry(this.#work.doc)).then(() => true)
      return outcome === 'found'
    })
  }

  /** Takes a loaded text as this session's state, and says what Redis must still be told. */
  #adopt (id: string, storedId: string, loaded: LoadedText | null, now: number): 'found' | 'missing' | 'discard' | 'refresh' {
    const { config, schema, stats } = this.#ctx
    if (loaded === null) {
      this.#startOver()
      return 'missing'
    }
    const doc = parseDocument(loaded.text)
    const problem = typeof doc === 'string' ? doc : schema?.mismatch(doc.d)
    if (problem !== undefined) this.#request.log.warn(logBindings, `fastify-session-redis: discarded a stored session: ${problem}`)
    // past its absolute deadline: an ordinary end, deleted without a warning
    if (typeof doc === 'string' || problem !== undefined || doc.a <= now) return 'discard'
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
    this.#id = newId(this.#ctx.config.idGenerator, this.#request)
    this.#storedId = undefined
    this.#mustWrite = Object.keys(fresh.d).length > 0
    // the browser's cookie names a deleted session: replaced once this one is written, else cleared
    this.#clearCookie = wasStored
  }

  protected async reloadNow (): Promise<void> {
    if (this.#base === 0) this.#startOver()
    else await this.#load(this.id, this.#redisId)
  }

  protected async destroyNow (): Promise<void> {
    if (this.#base !== 0) {
      await this.#ctx.store.remove(this.#redisId)
      this.#ctx.stats.destroyed++
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
      return saveDocument(this.#ctx, this.#redisId, this.#base, this.#work, this.#request)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** What a successful write changes: the stored version to build on, and the cookie of a new session. */
  #stored (written: Written): void {
    if (this.#base === 0) {
      this.#ctx.stats.created++
      this.#sendCookie = true
      this.#clearCookie = false
    }
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
