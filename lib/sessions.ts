import type { SessionData, SessionInfo, SessionManager as SessionManagerApi } from '../types/index.js'
import type { SessionStore } from './store.js'
import type { SessionStats } from './stats.js'
import { isValidId } from './cookie.js'
import { parseDocument } from './document.js'
import { liveDocument } from './expiry.js'
import { HINT_LENGTH, userOf, type UserIndex } from './user-index.js'
import { errors } from './errors.js'

type Data = Partial<SessionData> & Record<string, unknown>

/** `app.sessions`: the admin view of the sessions of one plugin instance. */
export class SessionManager implements SessionManagerApi {
  readonly #store: SessionStore
  readonly #index: UserIndex | undefined
  readonly #stats: SessionStats
  readonly #ttl: number
  readonly #storedIdOf: (id: string) => string

  /** `index` only when `userKey` is set; `storedIdOf` turns an id into the form Redis holds. */
  constructor (store: SessionStore, index: UserIndex | undefined, stats: SessionStats, ttl: number, storedIdOf: (id: string) => string) {
    this.#store = store
    this.#index = index
    this.#stats = stats
    this.#ttl = ttl
    this.#storedIdOf = storedIdOf
  }

  async get (id: string): Promise<Data | null> {
    if (!isValidId(id)) return null
    const now = Date.now()
    // rolling off: looking at a session must not keep it alive
    const loaded = await this.#store.load(this.#storedIdOf(id), now, this.#ttl, false)
    if (loaded === null) return null
    const doc = liveDocument(loaded.text, now)
    return doc === undefined ? null : doc.d as Data
  }

  async destroy (id: string): Promise<boolean> {
    if (!isValidId(id)) return false
    const storedId = this.#storedIdOf(id)
    const text = await this.#store.take(storedId)
    if (text === null) return false
    this.#stats.destroyed++
    const doc = parseDocument(text)
    if (this.#index !== undefined && typeof doc !== 'string' && doc.u !== undefined) await this.#index.forget(storedId, doc.u)
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
    const except = options.except === undefined ? undefined : this.#storedIdOf(options.except)
    const count = await index.destroyAll(name, except)
    this.#stats.destroyed += count
    return count
  }

  idHint (id: string): string {
    return this.#storedIdOf(id).slice(0, HINT_LENGTH)
  }

  #indexFor (user: string | number): { index: UserIndex, name: string } {
    if (this.#index === undefined) throw new errors.FST_REDIS_SESSION_INVALID_OPTION('userKey', 'must be set to list or destroy the sessions of a user')
    const name = userOf(user)
    if (name === undefined) throw new errors.FST_REDIS_SESSION_INVALID_VALUE('(user)', 'a user is a non-empty string or a finite number')
    return { index: this.#index, name }
  }
}
