import { createHash, randomBytes } from 'node:crypto'

/** Ids are base64url, at least 22 characters (128 bits): nothing that could mean anything to Redis. */
const ID_PATTERN = /^[A-Za-z0-9_-]{22,128}$/

export function defaultIdGenerator (): string {
  return randomBytes(32).toString('base64url')
}

export function isValidId (id: unknown): id is string {
  return typeof id === 'string' && ID_PATTERN.test(id)
}

/**
 * The id as Redis knows it. With `hashIds`, its SHA-256 in base64url (43 characters, itself of the
 * id format): whoever reads Redis (a dump, a replica, MONITOR) learns no id a cookie could carry.
 */
export function storedIdOf (hashIds: boolean): (id: string) => string {
  return hashIds ? hashId : unhashed
}

function hashId (id: string): string {
  return createHash('sha256').update(id).digest('base64url')
}

function unhashed (id: string): string {
  return id
}

/** An id, and the id under which Redis knows it (`storedIdOf`): the two always travel together. */
export interface SessionIds {
  readonly id: string
  readonly storedId: string
}

/** `id` with its stored id, as `storedId` (one of `storedIdOf`'s answers) makes it. */
export function idsOf (storedId: (id: string) => string, id: string): SessionIds {
  return { id, storedId: storedId(id) }
}
