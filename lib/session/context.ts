import type { SessionConfig } from '../model/settings.js'
import type { SessionStats } from '../model/stats.js'
import type { SessionSchema } from '../model/schema.js'
import type { SessionCookie } from '../cookie/signed-cookie.js'
import type { SessionRepository } from './repository.js'

/** What every session of one plugin instance shares (built once, in lib/index.ts). */
export interface SessionContext {
  config: SessionConfig
  /** Where a session's stored life is decided: load, save, rotate, regenerate, destroy. */
  repository: SessionRepository
  /** Reads and signs the id a client sends, and writes the one it gets. */
  cookie: SessionCookie
  stats: SessionStats
  schema: SessionSchema | undefined
}
