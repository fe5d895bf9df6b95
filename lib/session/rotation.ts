import { createCipheriv, createDecipheriv, createHash } from 'node:crypto'
import type { SessionOrigin } from '../../types/index.js'
import { idsOf, type SessionContext } from './context.js'
import { isValidId, newId, type SessionIds } from '../cookie/signed-cookie.js'
import { keyExpiry } from '../model/expiry.js'
import { applyOperation, parseDocument, serializeDocument, type Operation, type SessionDocument } from '../model/document.js'
import { errors } from '../model/errors.js'

// `rotateEvery`: a session's id is replaced by a new one once it is that old. The old key then
// holds, for the grace window, an alias naming its successor, so that a request still carrying the
// old cookie, or one in flight since before the rotation, carries on under the new id. The
// successor is encrypted with a key derived from the old id: the client, who holds that id, can
// follow the alias; whoever reads Redis (a dump, a replica, MONITOR) learns no usable id from it.

const ALIAS = /^\{"moved":"([A-Za-z0-9_-]+)","until":(\d+)\}$/

export interface Successor {
  /** The new id. */
  id: string
  /** When the alias ends, epoch ms. */
  until: number
}

function cipherKey (oldId: string): Buffer {
  return createHash('sha256').update('fastify-session-redis rotation\0' + oldId).digest()
}

// each key encrypts exactly one text (the alias of its old id), so a zero counter block is safe
const IV = Buffer.alloc(16)

/** The alias that the old id's key holds until `until`. */
export function aliasText (oldId: string, newId: string, until: number): string {
  const cipher = createCipheriv('aes-256-ctr', cipherKey(oldId), IV)
  const sealed = Buffer.concat([cipher.update(newId, 'utf8'), cipher.final()]).toString('base64url')
  return `{"moved":"${sealed}","until":${until}}`
}

export function isAlias (text: string): boolean {
  return text.startsWith('{"moved":"')
}

/** The successor an alias read under `oldId` names, or undefined when it is no alias of that id. */
export function successorOf (text: string, oldId: string): Successor | undefined {
  const match = ALIAS.exec(text)
  if (match === null) return undefined
  const decipher = createDecipheriv('aes-256-ctr', cipherKey(oldId), IV)
  const id = Buffer.concat([decipher.update(Buffer.from(match[1], 'base64url')), decipher.final()]).toString('utf8')
  return isValidId(id) ? { id, until: Number(match[2]) } : undefined
}

/** A save found the key turned into an alias: the session must follow it (never reaches a route). */
export class SessionMoved extends Error {
  readonly alias: string

  constructor (alias: string) {
    super('session moved to a new id')
    this.alias = alias
  }
}

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
  const next = idsOf(ctx, newId(config.idGenerator, origin))
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
  const ids = next === undefined ? undefined : idsOf(ctx, next.id)
  const loaded = ids === undefined ? null : await ctx.store.load(ids.storedId, Date.now(), ctx.config.ttl, false)
  const doc = loaded === null ? null : parseDocument(loaded.text)
  if (ids === undefined || doc === null || typeof doc === 'string') throw new errors.FST_REDIS_SESSION_GONE()
  for (const op of ops) applyOperation(doc, op)
  return { ids, doc }
}
