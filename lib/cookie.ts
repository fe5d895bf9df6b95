import { createHash, randomBytes } from 'node:crypto'
import { Signer } from '@fastify/cookie'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { CookieSettings } from './options.js'
import { errors } from './errors.js'

/** Ids are base64url, at least 22 characters (128 bits): nothing that could mean anything to Redis. */
const ID_PATTERN = /^[A-Za-z0-9_-]{22,128}$/
// id (≤ 128) + '.' + base64 HMAC-SHA256 (43): anything longer is rejected before any HMAC work
const MAX_SIGNED_LENGTH = 128 + 1 + 43
/** Verified cookie values remembered per instance (only valid ones, oldest out first), to skip their HMAC (README "Performance"). */
export const REMEMBERED_COOKIES = 10_000

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

export function newId (generate: (request: FastifyRequest) => string, request: FastifyRequest): string {
  const id = generate(request)
  if (!isValidId(id)) throw new errors.FST_REDIS_SESSION_BAD_ID()
  return id
}

export interface CookieId {
  readonly id: string
  /** `id` as Redis knows it (`storedIdOf`), worked out once per cookie value. */
  readonly storedId: string
  /** Signed by an older secret: re-issue it signed by the current one. */
  readonly renew: boolean
}

type ParseCookie = (header: string) => Record<string, string | undefined>

/** Reads, signs and writes the session cookie; the only code that knows the secrets. */
export class SessionCookie {
  readonly name: string
  readonly #signer: InstanceType<typeof Signer>
  readonly #settings: CookieSettings
  readonly #parse: ParseCookie
  readonly #storedIdOf: (id: string) => string
  readonly #verified = new Map<string, CookieId>()

  constructor (name: string, secrets: string[], settings: CookieSettings, parse: ParseCookie, storedIdOf: (id: string) => string) {
    this.name = name
    this.#storedIdOf = storedIdOf
    this.#signer = new Signer(secrets, 'sha256')
    this.#settings = settings
    this.#parse = parse
  }

  /** The raw cookie value the request carries, if any. */
  raw (request: FastifyRequest): string | undefined {
    const header = request.headers.cookie
    if (header === undefined) return undefined
    return (request.cookies ?? this.#parse(header))[this.name]
  }

  /** The id in a signed cookie value, or null when the value is forged, malformed or oversized. */
  verify (value: string): CookieId | null {
    if (value.length > MAX_SIGNED_LENGTH) return null
    const known = this.#verified.get(value)
    if (known !== undefined) return known
    const { valid, renew, value: id } = this.#signer.unsign(value)
    if (!valid || !isValidId(id)) return null
    const verified = Object.freeze({ id, renew, storedId: this.#storedIdOf(id) })
    if (this.#verified.size >= REMEMBERED_COOKIES) this.#verified.delete(this.#verified.keys().next().value as string)
    this.#verified.set(value, verified)
    return verified
  }

  write (request: FastifyRequest, reply: FastifyReply, id: string, secondsLeft: number, overrides?: Partial<CookieSettings>): void {
    const { maxAge, ...attributes } = this.#attributes(request, overrides)
    reply.setCookie(this.name, this.#signer.sign(id), {
      ...attributes,
      // a persistent cookie never outlives the session's absolute deadline
      maxAge: maxAge === undefined ? undefined : Math.min(maxAge, secondsLeft)
    })
    noStore(reply)
  }

  clear (request: FastifyRequest, reply: FastifyReply): void {
    const { maxAge, ...attributes } = this.#attributes(request, undefined)
    reply.clearCookie(this.name, attributes)
    noStore(reply)
  }

  /**
   * The attributes for this request. With `secure: 'auto'` over plain HTTP, SameSite=None and
   * Partitioned are left out: browsers drop such a cookie unless it is Secure.
   */
  #attributes (request: FastifyRequest, overrides: Partial<CookieSettings> | undefined): CookieSettings {
    const settings = overrides === undefined ? this.#settings : { ...this.#settings, ...overrides }
    if (settings.secure !== 'auto') return settings
    if (request.protocol === 'https') return { ...settings, secure: true }
    return { ...settings, secure: false, sameSite: settings.sameSite === 'none' ? 'lax' : settings.sameSite, partitioned: false }
  }
}

/** A response that sets or clears a session cookie is never for a shared cache, nor for the Back button. */
function noStore (reply: FastifyReply): void {
  if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store')
}
