import type { FastifyBaseLogger } from 'fastify'
import { idsOf, type SessionIds } from '../model/ids.js'
import type { LoadedText } from '../redis/store.js'
import type { SessionContext } from './context.js'
import { keyExpiry, type KeyExpiry } from '../model/expiry.js'
import { isAlias, successorOf } from '../model/alias.js'
import { applyOperation, newDocument, parseDocument, type SessionDocument } from '../model/document.js'
import type { WorkingDocument } from '../model/working-document.js'
import { logBindings } from '../model/errors.js'
import { channels, hintOf } from '../model/channels.js'

// The Redis side of a session's lifecycle, as a session asks for it: load (following a rotation's
// alias), take before a regenerate, destroy. Rotation itself: lib/session/rotation.ts.

/** A stored session that a request goes on from. */
export interface Found {
  ids: SessionIds
  doc: SessionDocument
  /** When its key expires now, epoch ms. */
  expiresAt: number
  /** The stored id the request came with, when it led here as the alias of a rotated-away id. */
  via?: string
}

/** What a loaded text is, and what Redis must still be told of it. */
type Examined =
  | { outcome: 'missing' } | { outcome: 'invalid' } | { outcome: 'expired' }
  | { outcome: 'found', doc: SessionDocument, expiresAt: number }
  | { outcome: 'refresh', doc: SessionDocument, expiresAt: number, expiry: KeyExpiry }

/**
 * Loads the session stored under `ids`; null when there is none to go on from (a broken or ended
 * one is deleted on the way). An id rotated away less than the grace window ago leads to its
 * successor, once (`follow`).
 */
export function loadSession (ctx: SessionContext, ids: SessionIds, log: FastifyBaseLogger, follow = true): Promise<Found | null> {
  const { store, config } = ctx
  const now = Date.now()
  // the clock is read only while someone listens (README "Events")
  const started = channels.load.hasSubscribers ? performance.now() : -1
  return store.load(ids.storedId, now, config.ttl, config.rolling).then((loaded) => {
    if (loaded !== null && isAlias(loaded.text)) return follow ? followAlias(ctx, ids, loaded.text, log) : null
    const seen = examine(ctx, loaded, now, log)
    if ((seen.outcome === 'missing' || seen.outcome === 'expired') && channels.expired.hasSubscribers) {
      channels.expired.publish({ idHint: hintOf(ids.storedId), reason: seen.outcome === 'missing' ? 'missing' : 'deadline' })
    }
    const found = conclude(ctx, ids, seen)
    if (started < 0) return found
    return Promise.resolve(found).then((result) => {
      channels.load.publish({
        idHint: hintOf(ids.storedId),
        outcome: seen.outcome === 'refresh' ? 'found' : seen.outcome,
        version: result === null ? 0 : result.doc.v,
        bytes: result === null || loaded === null ? 0 : Buffer.byteLength(loaded.text),
        durationMs: performance.now() - started
      })
      return result
    })
  })
}

function examine (ctx: SessionContext, loaded: LoadedText | null, now: number, log: FastifyBaseLogger): Examined {
  const { config, schema } = ctx
  if (loaded === null) return { outcome: 'missing' }
  const doc = parseDocument(loaded.text)
  const problem = typeof doc === 'string' ? doc : schema?.mismatch(doc.d)
  if (problem !== undefined) log.warn(logBindings, `fastify-session-redis: discarded a stored session: ${problem}`)
  if (typeof doc === 'string' || problem !== undefined) return { outcome: 'invalid' }
  // past its absolute deadline: an ordinary end, deleted without a warning
  if (doc.a <= now) return { outcome: 'expired' }
  if (!config.rolling) return { outcome: 'found', doc, expiresAt: Math.min(doc.a, now + loaded.pttl) }
  // a rolling read set the configured TTL; a session's own TTL or a near deadline needs another
  const expiry = keyExpiry(doc, config.ttl, now)
  if (expiry.mode === 'PX' && expiry.value === config.ttl * 1000) return { outcome: 'found', doc, expiresAt: expiry.at }
  return { outcome: 'refresh', doc, expiresAt: expiry.at, expiry }
}

/** Tells Redis what the load found out; no promise when there is nothing to tell. */
function conclude (ctx: SessionContext, ids: SessionIds, seen: Examined): Found | null | Promise<Found | null> {
  if (seen.outcome === 'missing') return null
  if (seen.outcome === 'invalid' || seen.outcome === 'expired') return ctx.store.remove(ids.storedId).then(() => null)
  ctx.stats.loaded++
  const found: Found = { ids, doc: seen.doc, expiresAt: seen.expiresAt }
  return seen.outcome === 'found' ? found : ctx.store.expire(ids.storedId, seen.expiry).then(() => found)
}

/** `old` holds `alias`, which only the raw old id decrypts. */
function followAlias (ctx: SessionContext, old: SessionIds, alias: string, log: FastifyBaseLogger): Promise<Found | null> {
  const next = successorOf(alias, old.id)
  if (next === undefined) return Promise.resolve(null)
  const ended = ctx.config.rolling ? ctx.store.endAliasAt(old.storedId, next.until) : undefined
  return Promise.all([ended, loadSession(ctx, idsOf(ctx.storedIdOf, next.id), log, false)]).then(([, found]) => found === null ? null : { ...found, via: old.storedId })
}

/**
 * What a regenerated session starts with: the `keep` keys of its latest state. When it was stored
 * (as `previous`), that is taken with GETDEL, so the old id dies at once and changes other requests
 * saved since this one loaded come along. Null when it ended meanwhile and keys were to be carried:
 * carrying them to a new id would revive it.
 */
export async function keptDocument (ctx: SessionContext, previous: string | undefined, work: WorkingDocument, keep: readonly string[] | undefined): Promise<SessionDocument | null> {
  const stored = previous === undefined ? undefined : await ctx.store.take(previous)
  const fresh = newDocument(Date.now(), ctx.config.absoluteTtl)
  if (keep === undefined || keep.length === 0) return fresh
  let latest = work.doc
  if (stored !== undefined) {
    const parsed = stored === null ? null : parseDocument(stored)
    if (parsed === null || typeof parsed === 'string') return null
    for (const op of work.ops) applyOperation(parsed, op)
    latest = parsed
  }
  for (const key of keep) if (Object.hasOwn(latest.d, key)) fresh.d[key] = latest.d[key]
  return fresh
}

/** Deletes a session, with its successor when it was rotated away meanwhile, and the alias that led here (`via`). */
export async function destroyStored (ctx: SessionContext, ids: SessionIds, via: string | undefined): Promise<void> {
  const { store, stats } = ctx
  const held = await store.take(ids.storedId)
  const next = held !== null && isAlias(held) ? successorOf(held, ids.id) : undefined
  if (next !== undefined) await store.remove(ctx.storedIdOf(next.id))
  if (via !== undefined) await store.remove(via)
  stats.destroyed++
  if (channels.destroy.hasSubscribers) channels.destroy.publish({ idHint: hintOf(ids.storedId), by: 'session' })
}
