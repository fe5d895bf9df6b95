import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyBaseLogger } from 'fastify'
import type { CreateSessionOptions, CreatedSession, DetachedSession, FromHeadersOptions, SessionData, SessionInfo, SessionManager as SessionManagerApi, SessionOrigin } from '../types/index.js'
import type { SessionStore } from './redis/store.js'
import type { SessionStats } from './model/stats.js'
import type { SessionRepository } from './session/repository.js'
import { RedisSession, type SessionContext } from './session/request-session.js'
import { verifyCookie } from './cookie/signed-cookie.js'
import { isValidId } from './model/ids.js'
import { newDocument } from './model/document.js'
import { userOf, type UserIndex } from './redis/user-index.js'
import { WorkingDocument } from './model/working-document.js'
import { errors } from './model/errors.js'
import { hintOf } from './model/channels.js'

type Data = Partial<SessionData> & Record<string, unknown>

const NO_MEMBERS: ReadonlySet<string> = new Set()

export interface ManagerOptions {
  context: SessionContext
  /** Counts the sessions stored. */
  store: SessionStore
  /** Set with `userKey` or `trackClient`. */
  index: UserIndex | undefined
  /** An id as Redis knows it (`storedIdOf` in lib/model/ids.ts). */
  storedIdOf: (id: string) => string
  /** The app's, for sessions whose caller gives none. */
  log: FastifyBaseLogger
}

/** `app.sessions`: the admin view of the sessions of one plugin instance, and sessions outside requests. */
export class SessionManager implements SessionManagerApi {
  readonly #ctx: SessionContext
  readonly #repository: SessionRepository
  readonly #log: FastifyBaseLogger
  readonly #store: SessionStore
  readonly #index: UserIndex | undefined
  readonly #stats: SessionStats
  readonly #storedIdOf: (id: string) => string

  constructor ({ context, store, index, storedIdOf, log }: ManagerOptions) {
    this.#ctx = context
    this.#repository = context.repository
    this.#log = log
    this.#store = store
    // the index is `list`'s and `destroyAll`'s only with `userKey` (there is one for `trackClient` alone too)
    this.#index = context.config.userKey === undefined ? undefined : index
    this.#stats = context.stats
    this.#storedIdOf = storedIdOf
  }

  /**
   * A new stored session, written as a request's first save is (each value checked as `set`
   * checks it, the size and the user index as for any save). No request: the id is the default
   * random one, not `idGenerator`'s.
   */
  async create (data: Data = {}, options: CreateSessionOptions = {}): Promise<CreatedSession> {
    if (typeof data !== 'object' || data === null || Array.isArray(data)) {
      throw new errors.FST_REDIS_SESSION_INVALID_VALUE('(data)', 'app.sessions.create takes an object of session data')
    }
    const ctx = this.#ctx
    const work = new WorkingDocument(newDocument(Date.now(), ctx.config.absoluteTtl), {}, NO_MEMBERS, ctx.schema)
    for (const key of Object.keys(data)) work.set(key, data[key])
    if (options.ttl !== undefined) work.ttl(options.ttl)
    work.persist(options.rememberMe ?? false)
    const id = await this.#repository.create(work)
    return { id, ...ctx.cookie.credentials(id) }
  }

  /** Checks the Cookie header as the request hook does: a bad cookie costs no Redis call and gets a fresh session. */
  async fromHeaders (headers: IncomingHttpHeaders, options: FromHeadersOptions = {}): Promise<DetachedSession> {
    const origin = originOf(headers, options, this.#log)
    const raw = this.#ctx.cookie.raw(headers)
    const verified = raw === undefined ? null : verifyCookie(this.#ctx.cookie, this.#stats, origin.log, raw)
    return verified === null ? RedisSession.fresh(this.#ctx, origin) : await RedisSession.open(this.#ctx, origin, verified)
  }

  async get (id: string): Promise<Data | null> {
    if (!isValidId(id)) return null
    const doc = await this.#repository.peek(id)
    return doc === undefined ? null : doc.d as Data
  }

  async destroy (id: string): Promise<boolean> {
    if (!isValidId(id)) return false
    return await this.#repository.destroyById(id)
  }

  count (): Promise<number> {
    return this.#store.countSessions()
  }

  stats (): SessionStats {
    return { ...this.#stats }
  }

  async list (user: string | number): Promise<SessionInfo[]> {
    const { index, name } = this.#indexFor(user)
    return index.list(name, Date.now())
  }

  async destroyAll (user: string | number, options: { except?: string } = {}): Promise<number> {
    const { index, name } = this.#indexFor(user)
    const except = options.except === undefined ? undefined : this.#storedIdOf(options.except)
    const count = await index.destroyAll(name, except)
    this.#stats.destroyed += count
    return count
  }

  idHint (id: string): string {
    return hintOf(this.#storedIdOf(id))
  }

  #indexFor (user: string | number): { index: UserIndex, name: string } {
    if (this.#index === undefined) throw new errors.FST_REDIS_SESSION_INVALID_OPTION('userKey', 'must be set to list or destroy the sessions of a user')
    const name = userOf(user)
    if (name === undefined) throw new errors.FST_REDIS_SESSION_INVALID_VALUE('(user)', 'a user is a non-empty string or a finite number')
    return { index: this.#index, name }
  }
}

/** The origin of a `fromHeaders` session; refuses what is not headers and options. */
function originOf (headers: unknown, options: unknown, log: FastifyBaseLogger): SessionOrigin {
  if (typeof headers !== 'object' || headers === null) {
    throw new errors.FST_REDIS_SESSION_INVALID_VALUE('(headers)', 'fromHeaders takes the request headers, an object')
  }
  if (typeof options !== 'object' || options === null) {
    throw new errors.FST_REDIS_SESSION_INVALID_VALUE('(options)', 'fromHeaders takes an object of options')
  }
  const { ip, protocol = 'http', log: own = log } = options as FromHeadersOptions
  if (ip !== undefined && typeof ip !== 'string') throw new errors.FST_REDIS_SESSION_INVALID_VALUE('(options) ip', 'must be a string')
  if (protocol !== 'http' && protocol !== 'https') throw new errors.FST_REDIS_SESSION_INVALID_VALUE('(options) protocol', "must be 'http' or 'https'")
  if (!isLogger(own)) throw new errors.FST_REDIS_SESSION_INVALID_VALUE('(options) log', 'must be a logger, such as the app\'s or a request\'s')
  return { headers: headers as IncomingHttpHeaders, ip, protocol, log: own }
}

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const

/** A pino-like logger: its level methods are what the session calls. */
function isLogger (log: unknown): log is FastifyBaseLogger {
  return typeof log === 'object' && log !== null && LEVELS.every(level => typeof (log as Record<string, unknown>)[level] === 'function')
}
