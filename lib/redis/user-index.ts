import type { SessionInfo, SessionOrigin } from '../../types/index.js'
import type { SessionStore } from './store.js'
import { isValidId } from '../model/ids.js'
import type { DocumentMeta, Operation, SessionDocument } from '../model/document.js'
import { lastRefreshOf, liveDocument } from '../model/expiry.js'
import { clientChanges } from '../model/client-info.js'
import { channels, hintOf } from '../model/channels.js'

/** A set this large is pruned when a session joins it, so ended sessions never pile up. */
const PRUNE_AT = 64
/**
 * A session joins its index before its first write, whose retries stop once `timeout` has passed
 * (the last attempt itself bounded by `timeout`): an entry younger than this whose session is not
 * (yet) stored is kept.
 */
const GRACE_TIMEOUTS = 12
/** Sessions inspected at once by `list` and `destroyAll`. */
const BATCH = 100

/** The index value of a session's `userKey` value: strings and finite numbers count, nothing else. */
export function userOf (value: unknown): string | undefined {
  if (typeof value === 'string') return value === '' ? undefined : value
  if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  return undefined
}

/**
 * The per-user index: one sorted set of stored ids (hashed with `hashIds`, never the raw id) per
 * user, scored by when each joined (the store names and writes it). Also where a save picks up the
 * `trackClient` metadata. Every id here is a stored id.
 */
export class UserIndex {
  readonly #store: SessionStore
  readonly #userKey: string | undefined
  readonly #trackClient: boolean
  readonly #ttl: number
  readonly #graceMs: number

  constructor (store: SessionStore, config: { userKey?: string | undefined, trackClient: boolean, ttl: number, timeout: number }) {
    this.#store = store
    this.#userKey = config.userKey
    this.#trackClient = config.trackClient
    this.#ttl = config.ttl
    this.#graceMs = config.timeout * GRACE_TIMEOUTS
  }

  /**
   * Called before a session is written: joins the user's index first (so a stored session never
   * claims an entry that is missing), and returns the metadata the write must carry, if any.
   * Costs a round trip only when the session is new to its user's index.
   */
  async prepare (id: string, isNew: boolean, doc: SessionDocument, origin: SessionOrigin | undefined): Promise<Operation | undefined> {
    // a session made outside a request and its headers (app.sessions.create) has no client yet
    const fields: DocumentMeta = this.#trackClient && origin !== undefined ? clientChanges(doc, origin) : {}
    if (this.#userKey !== undefined) {
      const user = userOf(Object.hasOwn(doc.d, this.#userKey) ? doc.d[this.#userKey] : undefined)
      if (user !== doc.u || (isNew && user !== undefined)) {
        // the old user's entry stays until pruned: taken out now, it would be missing should this
        // save fail, while the stored session still names that user
        if (user !== undefined) await this.#add(user, id, doc.a)
        fields.u = user
      }
    }
    return Object.keys(fields).length === 0 ? undefined : { kind: 'meta', fields }
  }

  /**
   * Called before a rotation stores the session under its new id: the copy names its user already,
   * so no save would add it (docs/rotating-ids.md). Costs a round trip only for a session with a user.
   */
  async join (id: string, doc: SessionDocument): Promise<void> {
    if (doc.u !== undefined) await this.#add(doc.u, id, doc.a)
  }

  async #add (user: string, id: string, deadline: number): Promise<void> {
    const now = Date.now()
    // no session key outlives its deadline (lib/model/expiry.ts, keyExpiry)
    const size = await this.#store.indexAdd(user, id, now, deadline - now)
    if (size > PRUNE_AT) await this.list(user, now)
  }

  /** Takes sessions (an id and the ids it was rotated to) out of a user's index. */
  async forget (ids: string[], user: string): Promise<void> {
    await this.#store.indexRemove(user, ids)
  }

  /** The user's live sessions, oldest first; entries of ended sessions are removed from the set. */
  async list (user: string, now: number): Promise<SessionInfo[]> {
    const live: SessionInfo[] = []
    const ended = await this.#each(user, now, async (id) => {
      const info = await this.#inspect(id, user, now)
      if (info === undefined) return undefined
      live.push(info)
      return true
    })
    await this.#prune(user, ended)
    return live.sort((a, b) => a.createdAt - b.createdAt)
  }

  /**
   * Deletes every session of the user but `except`; returns how many it deleted. A key met holding
   * an alias may have been rotated after the index was read, its successor joining only then: the
   * index is read again, and every entry not yet settled visited again, until no new alias turns up
   * (each one is met once, so this ends).
   */
  async destroyAll (user: string, except: string | undefined): Promise<number> {
    let count = 0
    const settled = new Set<string>()
    const ended: string[] = []
    let moved = true
    while (moved) {
      moved = false
      ended.push(...await this.#each(user, Date.now(), async (id) => {
        if (id === except || settled.has(id)) return true
        const outcome = await this.#store.indexDestroy(id, user)
        if (outcome === 0) return undefined
        settled.add(id)
        if (outcome === 2) {
          moved = true
          return false
        }
        count++
        if (channels.destroy.hasSubscribers) channels.destroy.publish({ idHint: hintOf(id), by: 'admin' })
        return false
      }))
    }
    await this.#prune(user, ended)
    return count
  }

  /**
   * Runs `visit` on every well-formed id in the user's set, a batch at a time; returns the entries
   * to remove. `visit` answers true (keep), false (remove) or undefined: no session of this user
   * there, which removes the entry only once it is too old for its session to be still on its way.
   */
  async #each (user: string, now: number, visit: (id: string) => Promise<boolean | undefined>): Promise<string[]> {
    const flat = await this.#store.indexMembers(user)
    const ended: string[] = []
    for (let i = 0; i < flat.length; i += 2 * BATCH) {
      const batch = flat.slice(i, i + 2 * BATCH)
      const visits: Array<Promise<void>> = []
      for (let j = 0; j < batch.length; j += 2) {
        const id = batch[j]
        const old = Number(batch[j + 1]) < now - this.#graceMs
        if (!isValidId(id)) ended.push(id)
        else visits.push(visit(id).then(keep => { if (keep === false || (keep === undefined && old)) ended.push(id) }))
      }
      await Promise.all(visits)
    }
    return ended
  }

  async #prune (user: string, ended: string[]): Promise<void> {
    if (ended.length > 0) await this.#store.indexRemove(user, ended)
  }

  /** What `list` shows of one entry, or undefined when the session ended or left this user. */
  async #inspect (id: string, user: string, now: number): Promise<SessionInfo | undefined> {
    const loaded = await this.#store.load(id, now, this.#ttl, false)
    if (loaded === null) return undefined
    const doc = liveDocument(loaded.text, now)
    if (doc === undefined || doc.u !== user) return undefined
    const expiry = now + loaded.pttl
    const info: SessionInfo = { idHint: hintOf(id), createdAt: doc.c, expiresAt: Math.min(doc.a, expiry) }
    const lastSeen = lastRefreshOf(doc, this.#ttl, expiry, now)
    if (lastSeen !== undefined) info.lastSeen = lastSeen
    if (doc.ip !== undefined) info.ip = doc.ip
    if (doc.ua !== undefined) info.userAgent = doc.ua
    return info
  }
}
