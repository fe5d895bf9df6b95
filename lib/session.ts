import type { FastifyReply, FastifyRequest } from 'fastify'
import type { NumericSessionKey, Session, SessionCookieOptions, SessionData, SessionKey, SessionValue } from '../types/index.js'
import { cookieOverrides, type CookieSettings, type SessionConfig } from './options.js'
import type { LoadedText, SessionStore } from './store.js'
import type { SessionStats } from './stats.js'
import type { SessionSchema } from './schema.js'
import type { UserIndex } from './user-index.js'
import type { SessionWriter, Written } from './writer.js'
import { secondsLeft, ttlOf as keyTtlOf } from './expiry.js'
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

const logBindings = { plugin: 'fastify-session-redis' }

/** Node's callback style, as @fastify/session takes it. */
type SessionCallback = (err?: Error) => void

/** Hands the response on, or the error that replaces it. */
function handOn (reply: FastifyReply, payload: unknown, done: SendDone, err: Error | null): void {
  if (err === null) return done(null, payload)
  // a redirect must not lead on as if the change had landed
  reply.removeHeader('location')
  done(err)
}

/** Returns the promise, or settles `callback` with it when one is given. */
function settleWith (request: FastifyRequest, promise: Promise<void>, callback: SessionCallback | undefined): Promise<void> | undefined {
  if (callback === undefined) return promise
  promise.then(() => { callback() }, callback).catch((err: unknown) => {
    request.log.error({ ...logBindings, err }, 'fastify-session-redis: a session callback threw')
  })
  return undefined
}

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
 *
 * The data keys are also plain own properties of the session, as @fastify/session code expects
 * (`request.session.user = x`): `#pull` turns what was assigned or deleted there into operations
 * before any read, write or save. Keys named like a member of the session are reachable through
 * `get`/`set` only.
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
  /** Must be written even without operations (regenerated with data kept). */
  #mustWrite = false
  /** Send Set-Cookie with the current id at the end of the request. */
  #sendCookie = false
  /** The client holds the cookie of a session this request destroyed or regenerated. */
  #clearCookie = false
  #touched = false
  /** Cookie attributes set by `options()` for this response. */
  #cookieOptions: Partial<CookieSettings> | undefined
  /** undefined until onSend; then the responses waiting for the commit in flight, or null once it ended. */
  #afterCommit: Array<() => void> | null | undefined

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
    this.#id ??= newId(this.#ctx.config.idGenerator, this.#request)
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
    this.#pull()
    return this.#ops.length > 0 || this.#mustWrite
  }

  get<K extends SessionKey> (key: K): SessionValue<K> | undefined {
    this.#pull()
    const data = this.#doc.d
    return (Object.hasOwn(data, key) ? data[key] : undefined) as SessionValue<K> | undefined
  }

  has (key: SessionKey): boolean {
    this.#pull()
    return Object.hasOwn(this.#doc.d, key)
  }

  set<K extends SessionKey> (key: K, value: SessionValue<K>): void {
    this.#pull()
    this.#set(key, value)
  }

  delete (key: SessionKey): void {
    this.#pull()
    this.#delete(key)
  }

  clear (): void {
    this.#pull()
    if (Object.keys(this.#doc.d).length > 0) this.#record({ kind: 'clear' })
  }

  toJSON (): Partial<SessionData> & Record<string, unknown> {
    this.#pull()
    return structuredClone(this.#doc.d)
  }

  data (): Partial<SessionData> & Record<string, unknown> {
    return this.toJSON()
  }

  increment (key: NumericSessionKey, step = 1): number {
    this.#pull()
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
    this.#expiresAt = expiryOf(this.#ctx, this.#doc, Date.now())
  }

  touch (): void {
    this.#touched = true
    if (this.#base !== 0) this.#expiresAt = expiryOf(this.#ctx, this.#doc, Date.now())
  }

  options (options: SessionCookieOptions & Record<string, unknown>): void {
    const overrides = cookieOverrides(options)
    if (overrides === undefined) return
    this.#cookieOptions = { ...this.#cookieOptions, ...overrides }
    this.#sendCookie = this.#base !== 0 || this.#sendCookie
  }

  regenerate (keep?: readonly SessionKey[]): Promise<void>
  regenerate (callback: SessionCallback): undefined
  regenerate (keep: readonly SessionKey[], callback: SessionCallback): undefined
  regenerate (keep?: readonly SessionKey[] | SessionCallback, callback?: SessionCallback): Promise<void> | undefined {
    if (typeof keep === 'function') return settleWith(this.#request, this.#regenerate(undefined), keep)
    return settleWith(this.#request, this.#regenerate(keep), callback)
  }

  destroy (): Promise<void>
  destroy (callback: SessionCallback): undefined
  destroy (callback?: SessionCallback): Promise<void> | undefined {
    return settleWith(this.#request, this.#destroy(), callback)
  }

  reload (): Promise<void>
  reload (callback: SessionCallback): undefined
  reload (callback?: SessionCallback): Promise<void> | undefined {
    return settleWith(this.#request, this.#reload(), callback)
  }

  save (): Promise<void>
  save (callback: SessionCallback): undefined
  save (callback?: SessionCallback): Promise<void> | undefined {
    const saving = new Promise<void>((resolve, reject) => {
      this.#persist(true, undefined, (err) => { if (err === null) resolve(); else reject(err) })
    })
    return settleWith(this.#request, saving, callback)
  }

  /**
   * Called from onSend: saves what changed, sets the cookie, then hands the payload on. Redis is
   * involved only when something changed; otherwise `done` is called at once. A route that sends
   * twice (an async handler that calls `reply.redirect()` without returning the reply) runs onSend
   * again while the first save is in flight: that pass waits for it and is then dropped, so the
   * first response goes out, with the cookie.
   */
  [kCommit] (reply: FastifyReply, payload: unknown, done: SendDone): void {
    if (this.#afterCommit === null) return done(null, payload)
    if (this.#afterCommit !== undefined) {
      // the first pass's response goes out first, with the cookie: going on would only make Fastify throw
      this.#afterCommit.push(() => {
        this.#request.log.debug(logBindings, 'fastify-session-redis: the route sent a second response, dropped; did it forget to return reply?')
      })
      return
    }
    this.#afterCommit = []
    const finish = (err: Error | null): void => {
      const waiting = this.#afterCommit as Array<() => void>
      this.#afterCommit = null
      handOn(reply, payload, done, err)
      for (const next of waiting) next()
    }
    try {
      this.#pull()
    } catch (err) {
      return finish(err as Error)
    }
    const { config, store } = this.#ctx
    if (this.isModified() || (this.#base === 0 && config.saveUninitialized)) {
      return this.#persist(false, reply, finish)
    }
    if (this.#touched && !config.rolling && this.#base !== 0) {
      store.expire(this.id, ttlOf(this.#ctx, this.#doc, Date.now()))
        .then(() => { this.#setCookie(reply) })
        .then(() => { finish(null) }, finish)
      return
    }
    this.#setCookie(reply)
    finish(null)
  }

  async #regenerate (keep: readonly string[] | undefined): Promise<void> {
    this.#pull()
    const carried = keep !== undefined && keep.length > 0
    let doc = this.#doc
    const wasStored = this.#base !== 0
    if (wasStored) {
      // GETDEL: changes other requests saved since this one loaded come along, and the old id dies at once
      const stored = await this.#ctx.store.take(this.id)
      const parsed = stored === null ? stored : parseDocument(stored)
      if (parsed === null || typeof parsed === 'string') {
        // ended meanwhile (destroyed, regenerated, expired): carrying data to a new id would revive it
        if (carried) {
          this.#replace(this.#reset())
          throw new errors.FST_REDIS_SESSION_GONE()
        }
      } else {
        for (const op of this.#ops) applyOperation(parsed, op)
        doc = parsed
      }
    }
    const now = Date.now()
    const fresh = newDocument(now, this.#ctx.config.absoluteTtl)
    for (const key of keep ?? []) if (Object.hasOwn(doc.d, key)) fresh.d[key] = doc.d[key]
    this.#replace(this.#reset(fresh))
    this.#id = newId(this.#ctx.config.idGenerator, this.#request)
    this.#mustWrite = Object.keys(fresh.d).length > 0
    // the browser's cookie names a deleted session: replaced once this one is written, else cleared
    this.#clearCookie = wasStored
  }

  async #destroy (): Promise<void> {
    if (this.#base !== 0) {
      await this.#ctx.store.remove(this.id)
      this.#ctx.stats.destroyed++
      this.#clearCookie = true
    }
    this.#replace(this.#reset())
  }

  async #reload (): Promise<void> {
    if (this.#base === 0) this.#replace(this.#reset())
    else await this.#fetch(this.id, Boolean)
  }

  #set (key: unknown, value: unknown): void {
    checkKey(key)
    if (value === undefined) return this.#delete(key)
    const data = this.#doc.d
    // the same primitive again is no change; an object may have been changed in place, so it counts
    if ((typeof value !== 'object' || value === null) && Object.hasOwn(data, key) && data[key] === value) return
    const reason = unfaithful(value)
    if (reason !== undefined) throw new errors.FST_REDIS_SESSION_INVALID_VALUE(key, reason)
    this.#ctx.schema?.checkValue(key, value)
    this.#record({ kind: 'set', key, value })
  }

  #delete (key: string): void {
    if (Object.hasOwn(this.#doc.d, key)) this.#record({ kind: 'delete', key })
  }

  /** Turns what route code assigned to or deleted from the session's own properties into operations. */
  #pull (): void {
    const view = this as unknown as Record<string, unknown>
    const data = this.#doc.d
    for (const key in view) {
      if (!Object.hasOwn(data, key) || data[key] !== view[key]) this.#set(key, view[key])
    }
    for (const key in data) {
      if (!Object.hasOwn(view, key) && !MEMBERS.has(key)) this.#record({ kind: 'delete', key })
    }
  }

  /** Makes the data keys own properties again, after the document was replaced. */
  #replace (doc: SessionDocument): void {
    this.#doc = doc
    const view = this as unknown as Record<string, unknown>
    for (const key in view) delete view[key]
    for (const key in doc.d) if (!MEMBERS.has(key)) view[key] = doc.d[key]
  }

  #setCookie (reply: FastifyReply): void {
    const { cookie } = this.#ctx
    if (this.#sendCookie) cookie.write(this.#request, reply, this.id, secondsLeft(this.#doc, Date.now()), this.#cookieOptions)
    else if (this.#clearCookie) cookie.clear(this.#request, reply)
  }

  #record (op: Operation): void {
    const doc = this.#doc
    applyOperation(doc, op)
    this.#ops.push(op)
    const view = this as unknown as Record<string, unknown>
    if (op.kind === 'clear') {
      for (const key in view) delete view[key]
    } else if (op.kind === 'set' || op.kind === 'increment' || op.kind === 'delete') {
      if (MEMBERS.has(op.key)) return
      if (Object.hasOwn(doc.d, op.key)) view[op.key] = doc.d[op.key]
      else delete view[op.key]
    }
  }

  /** Becomes a new, unsaved session (`doc`, else empty); its id is minted when first needed. */
  #reset (doc?: SessionDocument): SessionDocument {
    const now = Date.now()
    doc ??= newDocument(now, this.#ctx.config.absoluteTtl)
    this.#id = undefined
    this.#base = 0
    this.#ops = []
    this.#mustWrite = false
    this.#sendCookie = false
    this.#expiresAt = expiryOf(this.#ctx, doc, now)
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
      this.#replace(this.#reset())
      return false
    }
    const doc = parseDocument(loaded.text)
    const problem = typeof doc === 'string' ? doc : schema?.mismatch(doc.d)
    if (problem !== undefined) this.#request.log.warn(logBindings, `fastify-session-redis: discarded a stored session: ${problem}`)
    // past its absolute deadline: an ordinary end, deleted without a warning
    if (problem !== undefined || (doc as SessionDocument).a <= now) {
      return store.remove(id).then(() => {
        this.#replace(this.#reset())
        return false
      })
    }
    stats.loaded++
    this.#replace(doc as SessionDocument)
    this.#id = id
    this.#base = this.#doc.v
    this.#ops = []
    this.#mustWrite = false
    if (!config.rolling) {
      this.#expiresAt = Math.min(this.#doc.a, now + loaded.pttl)
      return true
    }
    // the read set the configured TTL; a per-session TTL or a near absolute deadline needs another
    const ttl = ttlOf(this.#ctx, this.#doc, now)
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
      this.#pull()
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
    const { stats } = this.#ctx
    if (this.#base === 0) {
      stats.created++
      this.#sendCookie = true
      this.#clearCookie = false
    }
    const now = Date.now()
    this.#base = written.version
    this.#ops = []
    this.#mustWrite = false
    this.#expiresAt = expiryOf(this.#ctx, written.doc, now)
    if (keepState && written.doc !== this.#doc) this.#replace(parseDocument(written.text) as SessionDocument)
    if (reply !== undefined) this.#setCookie(reply)
  }
}

/** The names of the session's own members: data keys so named are not mirrored as properties. */
const MEMBERS: ReadonlySet<string> = new Set([
  ...Object.getOwnPropertyNames(RedisSession.prototype),
  ...Object.getOwnPropertyNames(Object.prototype)
])

function ttlOf (ctx: SessionContext, doc: SessionDocument, now: number): number {
  return keyTtlOf(doc, ctx.config.ttl, now)
}

/** When the session would expire if written or refreshed now: epoch ms. */
function expiryOf (ctx: SessionContext, doc: SessionDocument, now: number): number {
  return now + ttlOf(ctx, doc, now) * 1000
}
