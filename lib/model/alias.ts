import { createCipheriv, createDecipheriv, createHash } from 'node:crypto'
import { isValidId } from './ids.js'

// `rotateEvery`: a session's id is replaced by a new one once it is that old. The old key then
// holds, for the grace window, an alias naming its successor, so that a request still carrying the
// old cookie, or one in flight since before the rotation, carries on under the new id. The
// successor is encrypted with a key derived from the old id: the client, who holds that id, can
// follow the alias; whoever reads Redis (a dump, a replica, MONITOR) learns no usable id from it.
// The save script (lib/redis/scripts.ts) recognises the same format.

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

/** Whether an alias may still be followed to `next`: only before its own deadline, whatever its key's TTL. */
export function withinGrace (next: Successor): boolean {
  return Date.now() < next.until
}

/** A save found the key turned into an alias: the session must follow it (never reaches a route). */
export class SessionMoved extends Error {
  readonly alias: string

  constructor (alias: string) {
    super('session moved to a new id')
    this.alias = alias
  }
}
