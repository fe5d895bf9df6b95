import type { SessionOrigin } from '../../types/index.js'
import type { SessionContext } from './context.js'
import { idsOf, newId, type SessionIds } from '../model/ids.js'
import { aliasText, successorOf } from '../model/alias.js'
import { keyExpiry } from '../model/expiry.js'
import { applyOperation, parseDocument, serializeDocument, type Operation, type SessionDocument } from '../model/document.js'
import { errors } from '../model/errors.js'

/** A session under a new id. */
export interface Moved { ids: SessionIds, doc: SessionDocument }

/** Whether a session holding `doc` is old enough to get a new id. */
export function rotationDue ({ rotateEvery }: { rotateEvery?: number | undefined }, doc: SessionDocument): boolean {
  return rotateEvery !== undefined && Date.now() - doc.c >= rotateEvery * 1000
}

/**
 * Moves the session stored as `current` (holding `doc`) to a new id, the old key becoming an alias
 * for the grace window; null when a save or another rotation got there first (the next request rotates).
 */
export async function rotateSession (ctx: SessionContext, current: SessionIds, doc: SessionDocument, origin: SessionOrigin): Promise<Moved | null> {
  const { config, store, stats } = ctx
  const now = Date.now()
  const moved = { ...doc, c: now }
  const next = idsOf(ctx.storedIdOf, newId(config.idGenerator, origin))
  const grace = config.rotateGrace * 1000
  // in ms, to the same instant a save would give the key (never past the absolute deadline)
  const ttl = Math.max(1, keyExpiry(moved, config.ttl, now).at - now)
  // keyed by stored ids; the alias itself is sealed with the raw old id, which only the client holds
  const done = await store.rotate(current.storedId, doc.v, next.storedId, serializeDocument(moved), ttl, aliasText(current.id, next.id, now + grace), grace)
  if (!done) return null
  stats.rotated++
  return { ids: next, doc: moved }
}

/** The successor that a save in flight under `id` found `alias` naming, with that save's `ops` applied. */
export async function successorForSave (ctx: SessionContext, alias: string, id: string, ops: readonly Operation[]): Promise<Moved> {
  const next = successorOf(alias, id)
  const ids = next === undefined ? undefined : idsOf(ctx.storedIdOf, next.id)
  const loaded = ids === undefined ? null : await ctx.store.load(ids.storedId, Date.now(), ctx.config.ttl, false)
  const doc = loaded === null ? null : parseDocument(loaded.text)
  if (ids === undefined || doc === null || typeof doc === 'string') throw new errors.FST_REDIS_SESSION_GONE()
  for (const op of ops) applyOperation(doc, op)
  return { ids, doc }
}
