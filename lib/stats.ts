/** Counters since the plugin started; `app.sessions.stats()` returns a copy. */
export interface SessionStats {
  loaded: number
  created: number
  saved: number
  destroyed: number
  conflicts: number
  rejectedCookies: number
  storeErrors: number
}

export function newStats (): SessionStats {
  return { loaded: 0, created: 0, saved: 0, destroyed: 0, conflicts: 0, rejectedCookies: 0, storeErrors: 0 }
}
