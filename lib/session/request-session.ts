import type { FastifyReply } from 'fastify'
import type { Session, SessionCookieOptions, SessionOrigin } from '../../types/index.js'
import type { Written } from '../redis/writer.js'
import { keyExpiry, rotationDue } from '../model/expiry.js'
import type { CookieId, SessionCookie } from '../cookie/signed-cookie.js'
import type { SessionIds } from '../model/ids.js'
import type { SessionConfig } from '../model/settings.js'
import type { SessionStats } from '../model/stats.js'
import type { SessionSchema } from '../model/schema.js'
import type { Found, Moved, SessionRepository } from './repository.js'
import { newDocument, parseDocument, type SessionDocument } from '../model/document.js'
import { WorkingDocument } from '../model/working-document.js'
import { errors } from '../model/errors.js'
import { SessionMethods } from './session-methods.js'
import { ResponseCookie } from '../cookie/response-cookie.js'
import { channels, hintOf, regenerateEvent } from '../model/channels.js'

/** What every session of one plugin instance shares (built once, in lib/index.ts). */
export interface SessionContext {
  config: SessionConfig
  /** Where a session's stored life is decided: load, save, rotate, regenerate, destroy. */
  repository: SessionRepository
  /** Reads and signs the id a client sends, and writes the one it gets. */
  cookie: SessionCookie
  stats: SessionStats
  schema: SessionSchema | undefined
}

/** Never read: every load ends in `#goOn`, which replaces it. */
const LOADING: SessionDocument = Object.freeze(newDocument(0, 0))

export const kFinish = Symbol('fastify-session-redis.finish')
export const kSetCookie = Symbol('fastify-session-redis.set-cookie')

/**
 * The session of one request (or of one `fromHeaders` call): its working document, its id, and
 * what the response must say of it.
 */
export class RedisSession extends SessionMethods implements Session {
  readonly #ctx: SessionContext
  // private fields behind getters: an own property would be taken for session data
  readonly #origin: SessionOrigin
  readonly #work: WorkingDocument
  /** Minted on first use: a request that never touches its fresh session pays nothing for it. */
  #ids: SessionIds | undefined
  /** The stored version this request builds on; 0 when not stored yet. */
  #base = 0
  #expiresAt = 0
  /** Must be written even without operations (regenerated with data kept). */
  #mustWrite = false
  /** What the response tells the client of this session. */
  readonly #cookie = new ResponseCookie()
  #touched = false
  /** The stored id of the id this request came with, when it led here as an alias of a rotated-away id. */
  #via: string | undefined

  /** `loading`: a stand-in until the load settles; a blank document per load costs (docs/performance.md). */
  private constructor (ctx: SessionContext, origin: SessionOrigin, loading?: SessionDocument) {
    super()
    this.#ctx = ctx
    this.#origin = origin
    const doc = loading ?? this.#blank()
    this.#work = new WorkingDocument(doc, this, MEMBERS, ctx.schema)
    if (loading === undefined) this.#expiresAt = this.#expiryOf(doc)
  }

  /** A new, empty session that costs nothing until it is written. */
  static fresh (ctx: SessionContext, origin: SessionOrigin): RedisSession {
    return new RedisSession(ctx, origin)
  }

  /**
   * The stored session the cookie names, or a fresh one (with a new id) when there is none; without
   * a promise when it comes from the local cache.
   */
  static open (ctx: SessionContext, origin: SessionOrigin, cookie: CookieId): RedisSession | Promise<RedisSession> {
    const session = new RedisSession(ctx, origin, LOADING)
    const found = ctx.repository.open(cookie, origin.log)
    return found instanceof Promise ? found.then((found) => session.#opened(found, cookie)) : session.#opened(found, cookie)
  }

  /** Goes on from what the load found: rotated first when its id is due for it. */
  #opened (found: Found | null, cookie: CookieId): RedisSession | Promise<RedisSession> {
    const ctx = this.#ctx
    if (!this.#goOn(found)) return this
    // a persistent cookie's Max-Age follows the expiry that a rolling read just pushed forward
    this.#cookie.send ||= cookie.renew || (ctx.config.rolling && (ctx.config.cookie.maxAge !== undefined || this.isPersistent))
    if (!rotationDue(ctx.config, this.#work.doc)) return this
    return ctx.repository.rotate(this.#current, this.#work.doc, this.#origin).then((moved) => {
      // lost to a save or another rotation meanwhile: this request goes on as it is
      if (moved !== null) this.#moveTo(moved, true)
      return this
    })
  }

  protected get work (): WorkingDocument { return this.#work }
  protected get origin (): SessionOrigin { return this.#origin }

  get id (): string { return this.#current.id }

  /** The ids, minted when first needed; every store call takes `storedId`, never `id`. */
  get #current (): SessionIds {
    this.#ids ??= this.#ctx.repository.newIds(this.#origin)
    return this.#ids
  }

  get sessionId (): string { return this.id }
  get isNew (): boolean { return this.#base === 0 }
  get createdAt (): number { return this.#work.doc.c }
  get expiresAt (): number { return this.#expiresAt }
  get isPersistent (): boolean { return this.#work.doc.p === 1 }

  /** Also true for an object or array loaded with the session and changed in place since (`cart.push(x)`). */
  isModified (): boolean {
    this.#work.settle()
    return this.#work.ops.length > 0 || this.#mustWrite
  }

  setTtl (seconds: number): void {
    this.#work.ttl(seconds)
    this.#expiresAt = this.#expiryOf(this.#work.doc)
  }

  rememberMe (remember = true): void {
    // a stored session's cookie changes kind in this response; a new one's is sent once it is stored
    if (this.#work.persist(remember)) this.#cookie.send ||= this.#base !== 0
  }

  touch (): void {
    this.#touched = true
    if (this.#base === 0) return
    this.#expiresAt = this.#expiryOf(this.#work.doc)
    this.#cookie.send ||= this.isPersistent
  }

  options (options: SessionCookieOptions & Record<string, unknown>): void {
    if (this.#cookie.override(options)) this.#cookie.send ||= this.#base !== 0
  }

  /**
   * What the end of the request must do in Redis: a save when something changed (or an untouched
   * new session is to be stored), a TTL refresh after `touch()` without rolling; null when nothing.
   */
  [kFinish] (): Promise<unknown> | null {
    const { config, repository } = this.#ctx
    if (this.isModified() || (this.#base === 0 && config.saveUninitialized)) return this.#write().then((written) => { this.#stored(written, true) })
    if (this.#touched && !config.rolling && this.#base !== 0) return repository.refresh(this.#current, this.#work.doc)
    return null
  }

  /** Sets or clears the cookie, when the response must. */
  [kSetCookie] (reply: FastifyReply): void {
    this.#cookie.write(this.#ctx.cookie, this.#origin, reply, this, this.#work.doc)
  }

  /** What `kSetCookie` would send, as a Set-Cookie header value; for sessions outside a request (`DetachedSession`). */
  setCookieHeader (): string | undefined {
    return this.#cookie.header(this.#ctx.cookie, this.#origin, this, this.#work.doc)
  }

  /** Takes a loaded session as this one's state; says whether there was one (else this one starts over). */
  #goOn (found: Found | null): found is Found {
    if (found === null) {
      this.#startOver()
      return false
    }
    this.#takeOver(found.ids, found.doc, true)
    this.#mustWrite = false
    this.#expiresAt = found.expiresAt
    if (found.via !== undefined) {
      // the client gets the new id in its cookie
      this.#via = found.via
      this.#cookie.send = true
    }
    return true
  }

  /** Goes on as the session stored under `ids`, holding `doc`; `stored`: as the store holds it. */
  #takeOver (ids: SessionIds, doc: SessionDocument, stored: boolean): void {
    this.#work.replace(doc, stored)
    this.#ids = ids
    this.#base = doc.v
  }

  /**
   * Goes on under new ids: the client gets the new id. `stored`: the successor holds `doc` as it is,
   * as after a rotation at load (a save that met a rotation writes what it carries over anyway).
   */
  #moveTo ({ ids, doc }: Moved, stored = false): void {
    this.#takeOver(ids, doc, stored)
    this.#cookie.send = true
  }

  protected async regenerateNow (keep: readonly string[] | undefined): Promise<void> {
    // a kept key changed in place goes along
    this.#work.settle()
    const previous = this.#base === 0 ? undefined : this.#current
    // the new id first, while `idGenerator` still sees the old data (as @fastify/session does)
    const next = this.#ctx.repository.newIds(this.#origin)
    const fresh = await this.#ctx.repository.keptDocument(previous, this.#work, keep)
    if (fresh === null) {
      this.#startOver()
      throw new errors.FST_REDIS_SESSION_GONE()
    }
    this.#startOver(fresh)
    this.#ids = next
    const kept = Object.keys(fresh.d).length
    this.#mustWrite = kept > 0
    if (channels.regenerate.hasSubscribers) channels.regenerate.publish(regenerateEvent(this.#current.storedId, previous?.storedId, kept))
    // the browser's cookie names a deleted session: replaced once this one is written, else cleared
    this.#cookie.clear = previous !== undefined
  }

  protected async reloadNow (): Promise<void> {
    if (this.#base === 0) this.#startOver()
    else this.#goOn(await this.#ctx.repository.load(this.#current, this.#origin.log))
  }

  protected async destroyNow (): Promise<void> {
    if (this.#base !== 0) {
      await this.#ctx.repository.destroy(this.#current, this.#via)
      this.#cookie.clear = true
    }
    this.#startOver()
  }

  protected async saveNow (): Promise<void> {
    this.#work.settle()
    const written = await this.#write()
    this.#stored(written)
    // merged with other requests' changes: the rest of this request sees the stored state
    if (written.doc !== this.#work.doc) this.#work.replace(parseDocument(written.text) as SessionDocument, true)
  }

  /**
   * Writes what the working document holds, once settled (`isModified`); an id rotated away
   * meanwhile hands the changes over to its successor.
   */
  #write (): Promise<Written> {
    return this.#ctx.repository.save(this.#current, this.#base, this.#work, this.#origin, (moved) => { this.#moveTo(moved) })
  }

  /**
   * What a successful write changes: the stored version to build on, and the cookie of a new
   * session. `last`: the request's last write, after which route code's changes go nowhere.
   */
  #stored (written: Written, last = false): void {
    if (this.#base === 0) {
      this.#ctx.stats.created++
      if (channels.create.hasSubscribers) channels.create.publish({ idHint: hintOf(this.#current.storedId), bytes: Buffer.byteLength(written.text) })
      this.#cookie.send = true
      this.#cookie.clear = false
    }
    // the write set a new expiry, which a persistent cookie follows
    if (written.doc.p === 1) this.#cookie.send = true
    this.#base = written.version
    this.#work.saved(last)
    this.#mustWrite = false
    this.#expiresAt = written.expiresAt
  }

  /** Becomes a new, unsaved session (`doc`, else an empty one) whose id is minted when first needed. */
  #startOver (doc: SessionDocument = this.#blank()): void {
    this.#work.replace(doc)
    this.#ids = undefined
    this.#base = 0
    this.#mustWrite = false
    this.#cookie.send = false
    this.#expiresAt = this.#expiryOf(doc)
  }

  #blank (): SessionDocument {
    return newDocument(Date.now(), this.#ctx.config.absoluteTtl)
  }

  /** When the session would expire if written or refreshed now: epoch ms. */
  #expiryOf (doc: SessionDocument): number {
    return keyExpiry(doc, this.#ctx.config.ttl, Date.now()).at
  }
}

/** The names of the session's own members: data keys so named are not mirrored as properties. */
const MEMBERS: ReadonlySet<string> = new Set([
  ...Object.getOwnPropertyNames(RedisSession.prototype),
  ...Object.getOwnPropertyNames(SessionMethods.prototype),
  ...Object.getOwnPropertyNames(Object.prototype)
])
