import { parseDocument, type SessionDocument } from './document.js'

// The one home of the time rules. The Lua scripts in store.ts repeat them where Redis itself
// must decide (LOAD_SCRIPT: the deadline; SAVE_SCRIPT: the TTL of a document put back).

/** Whole seconds to the absolute deadline, rounded up; 0 once it has passed. */
export function secondsLeft (doc: SessionDocument, now: number): number {
  return Math.max(0, Math.ceil((doc.a - now) / 1000))
}

/** The session's idle TTL in seconds: its own when `setTtl` set one, else the configured `ttl`. */
export function idleTtlOf (doc: SessionDocument, configuredTtl: number): number {
  return doc.t === 0 ? configuredTtl : doc.t
}

/** Seconds the stored key should live when written or refreshed now: the idle TTL, capped by the absolute deadline. */
export function ttlOf (doc: SessionDocument, configuredTtl: number, now: number): number {
  return Math.min(idleTtlOf(doc, configuredTtl), secondsLeft(doc, now))
}

/** The stored text as a document, or undefined when it cannot be trusted or is past its absolute deadline. */
export function liveDocument (text: string, now: number): SessionDocument | undefined {
  const doc = parseDocument(text)
  return typeof doc === 'string' || doc.a <= now ? undefined : doc
}

/**
 * When a session whose key expires at `expiresAt` was last refreshed, if that can be told. Every
 * refresh sets the TTL to the idle TTL unless the absolute deadline is nearer (then rounded up to
 * whole seconds): a key expiring over a second before the deadline was last refreshed one idle
 * TTL before it expires.
 */
export function lastRefreshOf (doc: SessionDocument, configuredTtl: number, expiresAt: number, now: number): number | undefined {
  if (expiresAt >= doc.a - 1000) return undefined
  return Math.min(now, Math.max(doc.c, expiresAt - idleTtlOf(doc, configuredTtl) * 1000))
}
