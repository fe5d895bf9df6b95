import { parseDocument, type SessionDocument } from './document.js'

// The one home of the time rules. The Lua scripts in lib/redis/scripts.ts repeat them where Redis itself
// must decide (LOAD_SCRIPT: the deadline; SAVE_SCRIPT: the expiry of a document put back;
// LATE_READ_SCRIPT: the expiry a read that timed out was owed).

/** Whole seconds to the absolute deadline, rounded up; 0 once it has passed. For the cookie's Max-Age only. */
export function secondsLeft (doc: SessionDocument, now: number): number {
  return Math.max(0, Math.ceil((doc.a - now) / 1000))
}

/** The session's idle TTL in seconds: its own when `setTtl` set one, else the configured `ttl`. */
export function idleTtlOf (doc: SessionDocument, configuredTtl: number): number {
  return doc.t === 0 ? configuredTtl : doc.t
}

/**
 * When the stored key is to expire, as Redis is told it (`PX` and ms, or `PXAT` and epoch ms), and
 * `at`, the epoch ms it comes to.
 */
export class KeyExpiry {
  readonly mode: 'PX' | 'PXAT'
  readonly value: number
  readonly at: number

  constructor (mode: 'PX' | 'PXAT', value: number, at: number) {
    this.mode = mode
    this.value = value
    this.at = at
  }
}

/**
 * The key's expiry when written or refreshed at `now`: the idle TTL, capped by the absolute deadline
 * (`at` ≤ now once it passed). Always `PXAT`, an instant, never a duration: a command that times out
 * is still sent, or already was, and Redis may run it much later (after a stall, or when ioredis
 * resends it on reconnecting); counted from then, a duration would stretch the idle timeout and
 * could carry the key past the absolute deadline, while the instant gives no more than the request
 * was owed when it was made. The price: idle expiry too is on the app server's clock.
 */
export function keyExpiry (doc: SessionDocument, configuredTtl: number, now: number): KeyExpiry {
  const at = Math.min(now + idleTtlOf(doc, configuredTtl) * 1000, doc.a)
  return new KeyExpiry('PXAT', at, at)
}

/** The stored text as a document, or undefined when it cannot be trusted or is past its absolute deadline. */
export function liveDocument (text: string, now: number): SessionDocument | undefined {
  const doc = parseDocument(text)
  return typeof doc === 'string' || doc.a <= now ? undefined : doc
}

/**
 * When a session whose key expires at `expiresAt` was last refreshed, if that can be told. Every
 * refresh sets the TTL to the idle TTL unless the absolute deadline is nearer (then the key expires
 * at the deadline itself, which `expiresAt`, read as a PTTL, misses by a few ms at most): a key
 * expiring over a second before the deadline was last refreshed one idle TTL before it expires.
 */
export function lastRefreshOf (doc: SessionDocument, configuredTtl: number, expiresAt: number, now: number): number | undefined {
  if (expiresAt >= doc.a - 1000) return undefined
  return Math.min(now, Math.max(doc.c, expiresAt - idleTtlOf(doc, configuredTtl) * 1000))
}

/** Whether a session holding `doc` is old enough to get a new id (`rotateEvery`, in seconds). */
export function rotationDue ({ rotateEvery }: { rotateEvery?: number | undefined }, doc: Pick<SessionDocument, 'c'>): boolean {
  return rotateEvery !== undefined && Date.now() - doc.c >= rotateEvery * 1000
}
