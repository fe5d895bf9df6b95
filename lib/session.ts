import type { FastifyReply, FastifyRequest } from 'fastify'
import type { NumericSessionKey, Session, SessionData, SessionKey, SessionValue } from '../types/index.js'
import type { SessionConfig } from './options.js'
import type { LoadedText, SessionStore } from './store.js'
import type { SessionStats } from './stats.js'
import type { SessionSchema } from './schema.js'
import type { UserIndex } from './user-index.js'
import { secondsLeft, type SessionWriter, type Written } from './writer.js'
import { newId, type CookieId, type SessionCookie } from './cookie.js'
import { applyOperation, newDocument, parseDocument, unfaithful, type Operation, type SessionDocument } from './document.js'
import { errors } from './errors.js'

/** What every session of one plugin instance shares. */
export interface SessionContext {
  config: SessionConfig
  store: SessionStore
  writer: SessionWriter
  cookie: SessionCookie
  stats: SessionStats
  schema: SessionSchema | undefined
  /** Set with `userKey` or `trackClient`. */
  index?: UserIndex
}

export const kCommit = Symbol('fastify-session-redis.commit')

/** onSend's callback. */
export type SendDone = (err: Error | null, payload?: unknown) => void

/** Hands the response on, or the error that replaces it. */
function handOn (reply: FastifyReply, payload: unknown, done: SendDone, err: Error | null): void {
  if (err === null) return done(null, payload)
  // a redirect must not lead on as if the change had landed
  reply.removeHeader('location')
  done(err)
}

const logBindings = { plugin: 'fastify-session-redis' }
// never read or changed: every path through `#fetch` replaces it before the session is handed out
const LOADING: SessionDocument = Object.freeze(newDocument(0, 0))

function checkKey (key: unknown): asserts key is string {
  if (typeof key !== 'string' || key === '' || key === '__proto__') {
    throw new errors.FST_REDIS_SESSION_INVALID_KEY(typeof key === 'string' ? JSON.stringify(key) : `of type ${typeof key}`)
  }
}

function copyFlash (flash: Record<string, string[]>): Record<string, string[]> {
  const copy: Record<string, string[]> = {}
  for (const type of Object.keys(flash)) copy[type] = [...flash[type]]
  return copy
}

/**
 * The session of one request. Reads come from the working document; every change is applied to
 * it and recorded as an operation, so a save that meets a newer stored version can replay them.
 */
export class RedisSession implements Session {
  readonly #ctx: SessionContext
  readonly #request: FastifyRequest
  /** Minted on first use: a request that never touches its fresh session pays nothing for it. */
  #id: string | undefined
  #doc: SessionDocument
  /** The stored version this request builds on; 0 when not stored yet. */
  #base = 0
  #ops: Operation[] = []
  #expiresAt = 0
  /** Must be written even without operations (regenerated). */
  #mustWrite = false
  /** Send Set-Cookie with the current id at the end of the request. */
  #sendCookie = false
  /** The client holds the cookie of a session this request destroyed. */
  #clearCookie = false
  #touched = false
  #committed = false

  /** `doc` undefined: a fresh session; otherwise a stand-in until `#fetch` sets the real one. */
  private constructor (ctx: SessionContext, request: FastifyRequest, doc: SessionDocument | undefined) {
    this.#ctx = ctx
    this.#request = request
    this.#doc = doc ?? this.#reset()
  }

  /** A new, empty session that costs nothing until it is written. */
  static fresh (ctx: SessionContext, request: FastifyRequest): RedisSession {
    return new RedisSession(ctx, request, undefined)
  }

  /** The stored session the cookie names, or a fresh one (with a new id) when there is none. */
  static load (ctx: SessionContext, request: FastifyRequest, cookie: CookieId): Promise<RedisSession> {
    const session = new RedisSession(ctx, request, LOADING)
    // one `then` on the store's promise: every layer of async function would add a promise and a tick
    return session.#fetch(cookie.id, (found) => {
      if (found) {
        const { maxAge } = ctx.config.cookie
        session.#sendCookie = cookie.renew || (maxAge !== undefined && ctx.config.rolling)
      }
      return session
    })
  }

  get id (): string {
    this.#id ??= newId(this.#ctx.config.idGenerator)
    return this.#id
  }

  get sessionId (): string {
    return this.id
  }

  get isNew (): boolean {
    return this.#base === 0
  }

  get createdAt (): number {
    return this.#doc.c
  }

  get expiresAt (): number {
    return this.#expiresAt
  }

  isModified (): boolean {
    return this.#ops.length > 0 || this.#mustWrite
  }

  get<K extends SessionKey> (key: K): SessionValue<K> | undefined {
    const data = this.#doc.d
    return (Object.hasOwn(data, key) ? data[key] : undefined) as SessionValue<K> | undefined
  }

  has (key: SessionKey): boolean {
    return Object.hasOwn(this.#doc.d, key)
  }

  set<K extends SessionKey> (key: K, value: SessionValue<K>): void {
    checkKey(key)
    if (value === undefined) return this.delete(key)
    const reason = unfaithful(value)
    if (reason !== undefined) throw new errors.FST_REDIS_SESSION_INVALID_VALUE(key, reason)
    this.#ctx.schema?.checkValue(key, value)
    this.#record({ kind: 'set', key, value })
  }

  delete (key: SessionKey): void {
    if (this.has(key)) this.#record({ kind: 'delete', key })
  }

  clear (): void {
    if (Object.keys(this.#doc.d).length > 0) this.#record({ kind: 'clear' })
  }

  toJSON (): Partial<SessionData> & Record<string, unknown> {
    return structuredClone(this.#doc.d)
  }

  increment (key: NumericSessionKey, step = 1): number {
    checkKey(key)
    const current = this.get(key)
    if (current !== undefined && typeof current !== 'number') {
      throw new errors.FST_REDIS_SESSION_INVALID_VALUE(key, 'increment needs a number, and it holds something else')
    }
    const next = (current ?? 0) + step
    if (!Number.isFinite(next)) throw new errors.FST_REDIS_SESSION_INVALID_VALUE(key, `${next} is not a finite number`)
    this.#ctx.schema?.checkValue(key, next)
    this.#record({ kind: 'increment', key, step })
    return next
  }

  flash (type: string, message: string | readonly string[]): void
  flash (type: string): string[]
  flash (): Record<string, string[]>
  flash (type?: string, message?: string | readonly string[]): void | string[] | Record<string, string[]> {
    const bucket = this.#doc.f
    // flash(undefined, message) is a bad key, not a call that reads and clears every message
    if (type === undefined && message === undefined) {
      const all = copyFlash(bucket)
      if (Object.keys(all).length > 0) this.#record({ kind: 'flashTake', taken: all })
      return copyFlash(all)
    }
    checkKey(type)
    if (message === undefined) {
      if (!Object.hasOwn(bucket, type)) return []
      const taken = [...bucket[type]]
      this.#record({ kind: 'flashTake', taken: { [type]: taken } })
      return [...taken]
    }
    const messages: string[] = typeof message === 'string' ? [message] : [...message]
    if (!messages.every(m => typeof m === 'string')) {
      throw new errors.FST_REDIS_SESSION_INVALID_VALUE(type, 'flash messages must be strings')
    }
    this.#record({ kind: 'flashAdd', type, messages })
  }

  setTtl (seconds: number): void {
    if (!Number.isSafeInteger(seconds) || seconds < 1) {
      throw new errors.FST_REDIS_SESSION_INVALID_VALUE('(ttl)', 'setTtl needs a whole number of seconds, at least 1')
    }
    this.#record({ kind: 'ttl', seconds })
  }

  touch (): void {
    this.#touched = true
  }

  async regenerate (): Promise<void> {
    if (this.#base !== 0) {
      // GETDEL: changes other requests saved since this one loaded come along, and the old id dies at once
      const stored = await this.#ctx.store.take(this.id)
      const doc = stored === null ? stored : parseDocument(stored)
      if (doc === null || typeof doc === 'string') {
        // destroyed, regenerated or expired meanwhile: carrying this request's copy to a new id would revive it
        this.#doc = this.#reset()
        throw new errors.FST_REDIS_SESSION_GONE()
      }
      for (const op of this.#ops) applyOperation(doc, op)
      this.#doc = doc
    }
    const now = Date.now()
    Object.assign(this.#doc, { v: 0, c: now, a: now + this.#ctx.config.absoluteTtl * 1000 })
    this.#id = newId(this.#ctx.config.idGenerator)
    this.#base = 0
    this.#ops = []
    this.#mustWrite = true
    this.#expiresAt = now + this.#ctx.writer.ttlOf(this.#doc, now) * 1000
  }

  async destroy (): Promise<void> {
    if (this.#base !== 0) {
      await this.#ctx.store.remove(this.id)
      this.#ctx.stats.destroyed++
      this.#clearCookie = true
    }
    this.#doc = this.#reset()
  }

  async reload (): Promise<void> {
    if (this.#base === 0) this.#doc = this.#reset()
    else await this.#fetch(this.id, Boolean)
  }

  save (): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#persist(true, undefined, (err) => { if (err === null) resolve(); else reject(err) })
    })
  }

  /**
   * Called once, from onSend: saves what changed, sets the cookie, then hands the payload on.
   * Redis is involved only when something changed; otherwise `done` is called at once.
   */
  [kCommit] (reply: FastifyReply, payload: unknown, done: SendDone): void {
    if (this.#committed) return done(null, payload)
    this.#committed = true
    const { config, store, writer } = this.#ctx
    if (this.isModified() || (this.#base === 0 && config.saveUninitialized)) {
      return this.#persist(false, reply, (err) => { handOn(reply, payload, done, err) })
    }
    if (this.#touched && !config.rolling && this.#base !== 0) {
      store.expire(this.id, writer.ttlOf(this.#doc, Date.now()))
        .then(() => { this.#setCookie(reply) })
        .then(() => { done(null, payload) }, (err: Error) => { handOn(reply, payload, done, err) })
      return
    }
    this.#setCookie(reply)
    done(null, payload)
  }

  #setCookie (reply: FastifyReply): void {
    const { cookie } = this.#ctx
    if (this.#sendCookie) cookie.write(this.#request, reply, this.id, secondsLeft(this.#doc, Date.now()))
    else if (this.#clearCookie) cookie.clear(this.#request, reply)
  }

  #record (op: Operation): void {
    applyOperation(this.#doc, op)
    this.#ops.push(op)
  }

  /** Becomes a new, empty, unsaved session; its id is minted when first needed. */
  #reset (): SessionDocument {
    const now = Date.now()
    const doc = newDocument(now, this.#ctx.config.absoluteTtl)
    this.#id = undefined
    this.#base = 0
    this.#ops = []
    this.#mustWrite = false
    this.#sendCookie = false
    this.#expiresAt = now + this.#ctx.writer.ttlOf(doc, now) * 1000
    return doc
  }

  /**
   * Loads `id` into this session, then hands `then` whether it was found: false (and a fresh
   * session) when there is nothing usable.
   */
  #fetch<T> (id: string, then: (found: boolean) => T): Promise<T> {
    const { store, config } = this.#ctx
    const now = Date.now()
    return store.load(id, now, config.ttl, config.rolling).then((loaded) => {
      const found = this.#adopt(id, loaded, now)
      return typeof found === 'boolean' ? then(found) : found.then(then)
    })
  }

  /** Takes a loaded text as this session's; a promise only when Redis must be told more. */
  #adopt (id: string, loaded: LoadedText | null, now: number): boolean | Promise<boolean> {
    const { store, config, schema, stats } = this.#ctx
    if (loaded === null) {
      this.#doc = this.#reset()
      return false
    }
    const doc = parseDocument(loaded.text)
    const problem = typeof doc === 'string' ? doc : schema?.mismatch(doc.d)
    if (problem !== undefined) this.#request.log.warn(logBindings, `fastify-session-redis: discarded a stored session: ${problem}`)
    // past its absolute deadline: an ordinary end, deleted without a warning
    if (problem !== undefined || (doc as SessionDocument).a <= now) {
      return store.remove(id).then(() => {
        this.#doc = this.#reset()
        return false
      })
    }
    stats.loaded++
    this.#doc = doc as SessionDocument
    this.#id = id
    this.#base = this.#doc.v
    this.#ops = []
    this.#mustWrite = false
    if (!config.rolling) {
      this.#expiresAt = Math.min(this.#doc.a, now + loaded.pttl)
      return true
    }
    // the read set the configured TTL; a per-session TTL or a near absolute deadline needs another
    const ttl = this.#ctx.writer.ttlOf(this.#doc, now)
    this.#expiresAt = Math.min(this.#doc.a, now + ttl * 1000)
    return ttl === config.ttl ? true : store.expire(id, ttl).then(() => true)
  }

  /**
   * Writes the session, then calls `done` once; from onSend (`reply` given), also sets the cookie,
   * in the same step. Callbacks, not promises: this is the write path of every changed session.
   */
  #persist (keepState: boolean, reply: FastifyReply | undefined, done: (err: Error | null) => void): void {
    let id: string
    try {
      id = this.id
    } catch (err) {
      return done(err as Error)
    }
    const index = this.#ctx.index
    // without userKey or trackClient, straight to the writer
    if (index === undefined) return this.#write(id, keepState, reply, done)
    index.prepare(id, this.#base === 0, this.#doc, this.#request).then((meta) => {
      if (meta !== undefined) this.#record(meta)
      this.#write(id, keepState, reply, done)
    }, done)
  }

  #write (id: string, keepState: boolean, reply: FastifyReply | undefined, done: (err: Error | null) => void): void {
    this.#ctx.writer.write(id, { base: this.#base, doc: this.#doc, ops: this.#ops }, (outcome) => {
      if (outcome instanceof Error) return done(outcome)
      // the writer settles a whole batch in one loop: nothing may throw out of here
      try {
        this.#written(outcome, keepState, reply)
      } catch (err) {
        return done(err as Error)
      }
      done(null)
    })
  }

  #written (written: Written, keepState: boolean, reply: FastifyReply | undefined): void {
    const { writer, stats } = this.#ctx
    if (this.#base === 0) {
      stats.created++
      this.#sendCookie = true
      this.#clearCookie = false
    }
    const now = Date.now()
    this.#base = written.version
    this.#ops = []
    this.#mustWrite = false
    this.#expiresAt = now + writer.ttlOf(written.doc, now) * 1000
    if (keepState && written.doc !== this.#doc) this.#doc = parseDocument(written.text) as SessionDocument
    if (reply !== undefined) this.#setCookie(reply)
  }
}
