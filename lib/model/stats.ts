import type { SessionStats } from '../../types/index.js'

/** Counters since the plugin started (declared in the public types); `app.sessions.stats()` returns a copy. */
export type { SessionStats }

export function newStats (): SessionStats {
  return { loaded: 0, created: 0, saved: 0, destroyed: 0, conflicts: 0, rejectedCookies: 0, storeErrors: 0, rotated: 0, cacheHits: 0, cacheMisses: 0, cacheInvalidations: 0, cacheLeaseExpiries: 0 }
}
