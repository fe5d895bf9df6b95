import type { FastifyRequest } from 'fastify'
import type { SessionConfig } from './options.js'
import type { SessionStore } from './store.js'
import type { SessionStats } from './stats.js'
import type { SessionSchema } from './schema.js'
import type { UserIndex } from './user-index.js'
import type { SessionWriter, Written } from './writer.js'
import type { SessionCookie } from './cookie.js'
import type { WorkingDocument } from './working-document.js'

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
 * Writes a request's working document of the session stored as `storedId`, built on stored version `base` (joining
 * the user index first when there is one). The writer takes callbacks, one less promise per save
 * on its batched path; this is the one place where that becomes a promise.
 */
export function saveDocument (ctx: SessionContext, storedId: string, base: number, work: WorkingDocument, request: FastifyRequest): Promise<Written> {
  const write = (): Promise<Written> => new Promise((resolve, reject) => {
    ctx.writer.write(storedId, { base, doc: work.doc, ops: work.ops }, (outcome) => {
      if (outcome instanceof Error) reject(outcome)
      else resolve(outcome)
    })
  })
  if (ctx.index === undefined) return write()
  return ctx.index.prepare(storedId, base === 0, work.doc, request).then((meta) => {
    if (meta !== undefined) work.record(meta)
    return write()
  })
}
