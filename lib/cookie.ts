import { randomBytes } from 'node:crypto'
import { Signer } from '@fastify/cookie'
import type { FastifyReply } from 'fastify'
import type { SessionOrigin } from '../types/index.js'
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

export function newId (generate: (origin: SessionOrigin) => string, origin: SessionOrigin): string {
  const id = generate(origin)
  if (!isValidId(id)) throw new errors.FST_REDIS_SESSION_BAD_ID()
  return id
}

export interface CookieId {
  readonly id: string
  /** Signed by an older secret: re-issue it signed by the current one. */
  readonly renew: boolean
}

type ParseCookie = (header: string) => Record<string, string | undefined>
/** Cookie attributes as serialized: `secure` is decided by then ('auto' resolved for the origin). */
type Serialized = Omit<CookieSettings, 'secure'> & { secure: boolean, expires?: Date }
type SerializeCookie = (name: string, value: string, options: Serialized) => string

/** Reads, signs and writes the session cookie; the only code that knows the secrets. */
export class SessionCookie {
  readonly name: string
  readonly #signer: InstanceType<typeof Signer>
  readonly #settings: CookieSettings
  readonly #parse: ParseCookie
  readonly #serialize: SerializeCookie
  readonly #verified = new Map<string, CookieId>()

  constructor (name: string, secrets: string[], settings: CookieSettings, parse: ParseCookie, serialize: SerializeCookie) {
    this.name = name
    this.#signer = new Signer(secrets, 'sha256')
    this.#settings = settings
    this.#parse = parse
    this.#serialize = serialize
  }

  /** The raw cookie value a Cookie header (or the cookies @fastify/cookie parsed from it) carries, if any. */
  raw (header: string | undefined, parsed?: Record<string, string | undefined>): string | undefined {
    if (header === undefined) return undefined
    return (parsed ?? this.#parse(header))[this.name]
  }

  /** The id in a signed cookie value, or null when the value is forged, malformed or oversized. */
  verify (value: string): CookieId | null {
    if (value.length > MAX_SIGNED_LENGTH) return null
    const known = this.#verified.get(value)
    if (known !== undefined) return known
    const { valid, renew, value: id } = this.#signer.unsign(value)
    if (!valid || !isValidId(id)) return null
    const verified = Object.freeze({ id, renew })
    if (this.#verified.size >= REMEMBERED_COOKIES) this.#verified.delete(this.#verified.keys().next().value as string)
    this.#verified.set(value, verified)
    return verified
  }

  write (origin: SessionOrigin, reply: FastifyReply, id: string, secondsLeft: number, overrides?: Partial<CookieSettings>): void {
    reply.setCookie(this.name, this.#signer.sign(id), this.#setting(origin, secondsLeft, overrides))
    noStore(reply)
  }

  clear (origin: SessionOrigin, reply: FastifyReply): void {
    reply.clearCookie(this.name, this.#clearing(origin))
    noStore(reply)
  }

  /** What `write` would set, as a Set-Cookie header value (for a response the plugin does not send). */
  header (origin: SessionOrigin, id: string, secondsLeft: number, overrides?: Partial<CookieSettings>): string {
    const setting = this.#setting(origin, secondsLeft, overrides)
    return this.#serialize(this.name, this.#signer.sign(id), { ...setting, secure: setting.secure === true })
  }

  /** What `clear` would set, as a Set-Cookie header value: as @fastify/cookie's clearCookie, expired in 1970. */
  clearHeader (origin: SessionOrigin): string {
    const clearing = this.#clearing(origin)
    return this.#serialize(this.name, '', { ...clearing, secure: clearing.secure === true, maxAge: 0, expires: new Date(0) })
  }

  #setting (origin: SessionOrigin, secondsLeft: number, overrides: Partial<CookieSettings> | undefined): CookieSettings {
    const { maxAge, ...attributes } = this.#attributes(origin, overrides)
    // a persistent cookie never outlives the session's absolute deadline
    return { ...attributes, maxAge: maxAge === undefined ? undefined : Math.min(maxAge, secondsLeft) }
  }

  #clearing (origin: SessionOrigin): Omit<CookieSettings, 'maxAge'> {
    const { maxAge, ...attributes } = this.#attributes(origin, undefined)
    return attributes
  }

  /**
   * The attributes for this request. With `secure: 'auto'` over plain HTTP, SameSite=None and
   * Partitioned are left out: browsers drop such a cookie unless it is Secure.
   */
  #attributes (origin: SessionOrigin, overrides: Partial<CookieSettings> | undefined): CookieSettings {
    const settings = overrides === undefined ? this.#settings : { ...this.#settings, ...overrides }
    if (settings.secure !== 'auto') return settings
    if (origin.protocol === 'https') return { ...settings, secure: true }
    return { ...settings, secure: false, sameSite: settings.sameSite === 'none' ? 'lax' : settings.sameSite, partitioned: false }
  }
}

/** A response that sets or clears a session cookie is never for a shared cache, nor for the Back button. */
function noStore (reply: FastifyReply): void {
  if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store')
}
