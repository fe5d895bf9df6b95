import type { SessionCacheEvent } from '../../types/index.js'
import type { SessionStats } from './stats.js'
import { channels } from './channels.js'

// The local session cache's bookkeeping, without I/O: its entries (least recently used first), the
// freshness lease, and the counters that tell whether a read's reply may still be cached.
// lib/redis/invalidations.ts feeds it what the invalidation connection hears.

/** The longest an entry is kept, whatever else allows, in ms: a bound should an invalidation ever be missed. */
export const HARD_CAP_MS = 60_000
/**
 * Slots in the memories of changes and of saves (a power of two): a fixed array indexed by a hash of
 * the id costs a multiply per character, where a Map of ids kept per change cost its growth, its
 * clearing and the garbage of both on every write. Ids sharing a slot cost a reply not kept, or a
 * rolling read, never a stale answer.
 */
export const SLOTS = 1 << 14

/** The slot of `id`: FNV-1a over its UTF-16 code units. */
export function slotOf (id: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < id.length; i++) hash = Math.imul(hash ^ id.charCodeAt(i), 0x01000193)
  return hash & (SLOTS - 1)
}

/** What a load found, as text. */
export interface CacheEntry<D = unknown> {
  readonly text: string
  /**
   * The document parsed from `text` at the entry's first hit, frozen all the way down: each request
   * answered from it works on a copy of its own (`copyJson`), cheaper than parsing the text again.
   * Not made before a hit, so that a session written after each read pays nothing for it.
   */
  doc?: D
  /** When the key expires in Redis, epoch ms. */
  readonly expiresAt: number
  /** When the key's idle expiry is due to be refreshed, epoch ms (Infinity: never). */
  readonly refreshDueAt: number
  /** The session's creation time (rotation), epoch ms. */
  readonly createdAt: number
  /** The session's absolute deadline, epoch ms. */
  readonly deadline: number
  /** When it was cached, epoch ms. */
  readonly cachedAt: number
}

/** Taken before a read is sent: whether its reply may be cached when it arrives. */
export interface Ticket {
  /** -1: tracking was not on when the read was sent. */
  readonly era: number
  readonly seq: number
}

export interface LocalCacheOptions {
  /** Entries at most. */
  max: number
  /** ms the cache answers after its last proof of life. */
  lease: number
  stats: SessionStats
  /** Told when the cache stops or starts answering, or drops every entry. */
  onChange?: (event: SessionCacheEvent) => void
}

export class LocalCache<D = unknown> {
  readonly #entries = new Map<string, CacheEntry<D>>()
  /** By slot: `#seq` at the last change of an id in it (128 KiB). */
  readonly #changedAt = new Float64Array(SLOTS)
  readonly #max: number
  readonly #lease: number
  readonly #stats: SessionStats
  readonly #onChange: ((event: SessionCacheEvent) => void) | undefined
  /**
   * By slot: 1 while an id in it was saved by this process since it was last loaded, most likely a
   * session written on every request, whose next load is best the rolling read (GETEX) it is
   * without the cache, kept nowhere.
   */
  readonly #saved = new Uint8Array(SLOTS)
  #seq = 0
  /** Bumped whenever a reply to a read sent before could carry what the cache has not heard invalidated. */
  #era = 0
  /** Bumped when the invalidation connection is lost: what was asked of it before counts no more. */
  #epoch = 0
  #tracking = false
  /** performance.now() when the last proven PING was sent. */
  #provenAt = -Infinity
  #answering = false

  constructor ({ max, lease, stats, onChange }: LocalCacheOptions) {
    this.#max = max
    this.#lease = lease
    this.#stats = stats
    this.#onChange = onChange
  }

  get size (): number {
    return this.#entries.size
  }

  /** Tracking is on and subscribed on the current connection. */
  get tracking (): boolean {
    return this.#tracking
  }

  /** The current epoch: `proven` and `trackingOn` take it, so that nothing from before a reconnect counts. */
  get epoch (): number {
    return this.#epoch
  }

  /** Whether the lease holds at `at` (performance.now()); notes when it ran out. */
  answering (at = performance.now()): boolean {
    const live = this.#tracking && at - this.#provenAt < this.#lease
    if (!live && this.#answering) this.#stop('lease')
    return live
  }

  /** The entry for `id`, while the lease holds and the entry is within every deadline at `now` (epoch ms). */
  lookup (id: string, now: number): CacheEntry<D> | undefined {
    if (!this.answering()) return undefined
    const entry = this.#entries.get(id)
    if (entry === undefined) return undefined
    this.#entries.delete(id)
    if (now >= entry.expiresAt || now >= entry.deadline || now - entry.cachedAt >= HARD_CAP_MS) return undefined
    // most recently used last
    this.#entries.set(id, entry)
    return entry
  }

  /** Taken before a read of `id` is sent. */
  ticket (): Ticket {
    return { era: this.#tracking ? this.#era : -1, seq: this.#seq }
  }

  /**
   * Keeps what a read sent with `ticket` found, unless the key changed since, or tracking was off
   * or restarted meanwhile: then an invalidation of a newer write may have come before this reply.
   */
  put (id: string, ticket: Ticket, entry: CacheEntry<D>): boolean {
    if (ticket.era !== this.#era || this.#changedAt[slotOf(id)] > ticket.seq) return false
    this.#entries.delete(id)
    this.#entries.set(id, entry)
    if (this.#entries.size > this.#max) this.#entries.delete(this.#entries.keys().next().value!)
    return true
  }

  /** `id` changed (this process wrote it, or Redis said so): its entry goes, and no read in flight caches it. */
  drop (id: string): void {
    this.#drop(id, slotOf(id))
  }

  #drop (id: string, slot: number): void {
    if (this.#entries.size !== 0) this.#entries.delete(id)
    this.#changedAt[slot] = ++this.#seq
  }

  /** This process is about to save `id`: `drop`, and noted for `savedSinceLoad`. */
  saving (id: string): void {
    const slot = slotOf(id)
    this.#drop(id, slot)
    this.#saved[slot] = 1
  }

  /** Whether this process saved `id` (or an id sharing its slot) since it last asked; forgets it. */
  savedSinceLoad (id: string): boolean {
    const slot = slotOf(id)
    if (this.#saved[slot] === 0) return false
    this.#saved[slot] = 0
    return true
  }

  /** Redis invalidated `id`. */
  invalidated (id: string): void {
    this.#stats.cacheInvalidations++
    this.drop(id)
  }

  /** Drops every entry; no read sent before caches its reply. */
  flush (reason: SessionCacheEvent['reason']): void {
    const entries = this.#entries.size
    this.#entries.clear()
    this.#era++
    this.#publish({ state: 'flushed', reason, entries })
  }

  /** The invalidation connection closed, or (re)connected and is not tracking yet: nothing is answered. */
  lost (reason: SessionCacheEvent['reason']): void {
    this.#tracking = false
    this.#epoch++
    this.#provenAt = -Infinity
    if (this.#answering) this.#stop(reason)
    this.flush(reason)
  }

  /** Tracking is on and subscribed, in `epoch`: replies of reads sent from now on may be cached. */
  trackingOn (epoch: number): void {
    if (epoch === this.#epoch) this.#tracking = true
  }

  /** A PING sent at `sentAt` (performance.now()) in `epoch` was answered: every invalidation before it has arrived. */
  proven (epoch: number, sentAt: number): void {
    if (epoch !== this.#epoch || !this.#tracking) return
    if (sentAt > this.#provenAt) this.#provenAt = sentAt
    if (!this.#answering && this.answering()) {
      this.#answering = true
      this.#publish({ state: 'answering', reason: 'proven', entries: this.#entries.size })
    }
  }

  #stop (reason: SessionCacheEvent['reason']): void {
    this.#answering = false
    this.#stats.cacheLeaseExpiries++
    this.#publish({ state: 'stopped', reason, entries: this.#entries.size })
  }

  #publish (event: SessionCacheEvent): void {
    this.#onChange?.(event)
    if (channels.cache.hasSubscribers) channels.cache.publish(event)
  }
}
