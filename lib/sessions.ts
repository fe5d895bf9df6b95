import type { CreateSessionOptions, CreatedSession, SessionData, SessionInfo, SessionManager as SessionManagerApi } from '../types/index.js'
import type { SessionStore } from './store.js'
import type { SessionStats } from './stats.js'
import { defaultIdGenerator, isValidId } from './cookie.js'
import { newDocument, parseDocument } from './document.js'
import { liveDocument } from './expiry.js'
import { userOf, type UserIndex } from './user-index.js'
import { saveDocument, type SessionContext } from './context.js'
import { WorkingDocument } from './working-document.js'
import { errors } from './errors.js'

type Data = Partial<SessionData> & Record<string, unknown>

const NO_MEMBERS: ReadonlySet<string> = new Set()

/** `app.sessions`: the admin view of the sessions of one plugin instance. */
export class SessionManager implements SessionManagerApi {
  readonly #ctx: SessionContext
  readonly #store: SessionStore
  readonly #index: UserIndex | undefined
  readonly #stats: SessionStats
  readonly #ttl: number

  constructor (ctx: SessionContext) {
    this.#ctx = ctx
    this.#store = ctx.store
    // the index also serves trackClient alone; list and destroyAll need a userKey
    this.#index = ctx.config.userKey === undefined ? undefined : ctx.index
    this.#stats = ctx.stats
    this.#ttl = ctx.config.ttl
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
    const id = defaultIdGenerator()
    await saveDocument(ctx, id, 0, work, undefined)
    this.#stats.created++
    return { id, ...ctx.cookie.credentials(id) }
  }

  async get (id: string): Promise<Data | null> {
    if (!isValidId(id)) return null
    const now = Date.now()
    // rolling off: looking at a session must not keep it alive
    const loaded = await this.#store.load(id, now, this.#ttl, false)
    if (loaded === null) return null
    const doc = liveDocument(loaded.text, now)
    return doc === undefined ? null : doc.d as Data
  }

  async destroy (id: string): Promise<boolean> {
    if (!isValidId(id)) return false
    const text = await this.#store.take(id)
    if (text === null) return false
    this.#stats.destroyed++
    const doc = parseDocument(text)
    if (this.#index !== undefined && typeof doc !== 'string' && doc.u !== undefined) await this.#index.forget(id, doc.u)
    return true
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
    const count = await index.destroyAll(name, options.except)
    this.#stats.destroyed += count
    return count
  }

  #indexFor (user: string | number): { index: UserIndex, name: string } {
    if (this.#index === undefined) throw new errors.FST_REDIS_SESSION_INVALID_OPTION('userKey', 'must be set to list or destroy the sessions of a user')
    const name = userOf(user)
    if (name === undefined) throw new errors.FST_REDIS_SESSION_INVALID_VALUE('(user)', 'a user is a non-empty string or a finite number')
    return { index: this.#index, name }
  }
}
