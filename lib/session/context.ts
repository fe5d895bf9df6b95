import type { FastifyBaseLogger, FastifyError } from 'fastify'
import type { SessionOrigin, SessionSaveEvent } from '../../types/index.js'
import type { SessionConfig } from '../model/settings.js'
import type { SessionStore } from '../redis/store.js'
import type { SessionStats } from '../model/stats.js'
import type { SessionSchema } from '../model/schema.js'
import type { UserIndex } from '../redis/user-index.js'
import type { SessionWriter, Written } from '../redis/writer.js'
import type { CookieId, SessionCookie } from '../cookie/signed-cookie.js'
import type { WorkingDocument } from '../model/working-document.js'
import { logBindings } from '../model/errors.js'
import { channels, hintOf } from '../model/channels.js'

/** What every session of one plugin instance shares. */
export interface SessionContext {
  config: SessionConfig
  store: SessionStore
  writer: SessionWriter
  cookie: SessionCookie
  stats: SessionStats
  /** An id as Redis knows it: hashed with `hashIds`. */
  storedIdOf: (id: string) => string
  schema: SessionSchema | undefined
  /** Set with `userKey` or `trackClient`. */
  index?: UserIndex
}

/**
 * Writes a working document of the session stored as `storedId`, built on stored version `base`
 * (joining the user index first when there is one); `origin` is undefined for `app.sessions.create`.
 * The writer takes callbacks, one less promise per save on its batched path; this is the one place
 * where that becomes a promise.
 */
export function saveDocument (ctx: SessionContext, storedId: string, base: number, work: WorkingDocument, origin: SessionOrigin | undefined): Promise<Written> {
  const write = (): Promise<Written> => new Promise((resolve, reject) => {
    ctx.writer.write(storedId, { base, doc: work.doc, ops: work.ops }, (outcome) => {
      if (outcome instanceof Error) reject(outcome)
      else resolve(outcome)
    })
  })
  // the clock is read, and a promise added, only while someone listens (README "Events")
  const started = channels.save.hasSubscribers ? performance.now() : -1
  const saving = ctx.index === undefined
    ? write()
    : ctx.index.prepare(storedId, base === 0, work.doc, origin).then((meta) => {
      if (meta !== undefined) work.record(meta)
      return write()
    })
  if (started < 0) return saving
  const event = (): SessionSaveEvent => ({ idHint: hintOf(storedId), outcome: 'saved', isNew: base === 0, version: 0, bytes: 0, durationMs: performance.now() - started })
  return saving.then((written) => {
    channels.save.publish({ ...event(), version: written.version, bytes: Buffer.byteLength(written.text) })
    return written
  }, (err: FastifyError) => {
    channels.save.publish({ ...event(), outcome: 'failed', code: err.code })
    throw err
  })
}

/** The id a raw cookie value names, or null when it is forged or malformed (counted, logged, no Redis call). */
export function verifyCookie (ctx: SessionContext, log: FastifyBaseLogger, raw: string): CookieId | null {
  const verified = ctx.cookie.verify(raw)
  if (verified === null) {
    ctx.stats.rejectedCookies++
    log.debug(logBindings, 'fastify-session-redis: rejected a session cookie')
  }
  return verified
}
