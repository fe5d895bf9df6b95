import { randomBytes } from 'node:crypto'
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

export function newId (generate: (request: FastifyRequest) => string, request: FastifyRequest): string {
  const id = generate(request)
  if (!isValidId(id)) throw new errors.FST_REDIS_SESSION_BAD_ID()
  return id
}

export interface CookieId {
  readonly id: string
  /** Signed by an older secret: re-issue it signed by the current one. */
  readonly renew: boolean
}

type ParseCookie = (header: string) => Record<string, string | undefined>

/** Where the signed id travels: the cookie, a request and response header, or both (the header wins). */
export interface Transport {
  idFrom: 'cookie' | 'header' | 'both'
  header: string
}

/** What a client sends to be in a session: the Cookie header value, and the headers to send. */
export interface ClientCredentials {
  cookie: string
  headers: Record<string, string>
}

/**
 * Reads, signs and writes the session cookie, and the session header when `idFrom` asks for it;
 * the only code that knows the secrets.
 */
export class SessionCookie {
  readonly name: string
  readonly #signer: InstanceType<typeof Signer>
  readonly #settings: CookieSettings
  readonly #parse: ParseCookie
  readonly #verified = new Map<string, CookieId>()
  readonly #useCookie: boolean
  /** The header's name, lower-cased as Node gives request headers; undefined with idFrom 'cookie'. */
  readonly #header: string | undefined

  constructor (name: string, secrets: string[], settings: CookieSettings, parse: ParseCookie, transport: Transport = { idFrom: 'cookie', header: '' }) {
    this.name = name
    this.#signer = new Signer(secrets, 'sha256')
    this.#settings = settings
    this.#parse = parse
    this.#useCookie = transport.idFrom !== 'header'
    this.#header = transport.idFrom === 'cookie' ? undefined : transport.header.toLowerCase()
  }

  /**
   * The raw signed value the request carries, if any: the header's when it holds one (an empty
   * header is none), else the cookie's. A header that fails verification is refused, never
   * passed over for the cookie.
   */
  raw (request: FastifyRequest): string | undefined {
    if (this.#header !== undefined) {
      const value = request.headers[this.#header]
      // a repeated header arrives joined with ", ": no valid value, refused by verify()
      if (typeof value === 'string' && value !== '') return value
    }
    const header = request.headers.cookie
    if (header === undefined || !this.#useCookie) return undefined
    return (request.cookies ?? this.#parse(header))[this.name]
  }

  /** What a client sends to be in session `id` (`app.sessions.create`). */
  credentials (id: string): ClientCredentials {
    const signed = this.#signer.sign(id)
    // encoded as setCookie encodes it, so the cookie parser gives the signed value back
    const cookie = `${this.name}=${encodeURIComponent(signed)}`
    const headers: Record<string, string> = {}
    if (this.#useCookie) headers.cookie = cookie
    if (this.#header !== undefined) headers[this.#header] = signed
    return { cookie, headers }
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

  /**
   * Sends the signed id. The cookie's Max-Age is this response's `options({ maxAge })`, else
   * `persistFor` (a remembered session's remaining life), else the configured `cookie.maxAge`.
   */
  write (request: FastifyRequest, reply: FastifyReply, id: string, secondsLeft: number, persistFor: number | undefined, overrides?: Partial<CookieSettings>): void {
    const signed = this.#signer.sign(id)
    if (this.#header !== undefined) reply.header(this.#header, signed)
    if (this.#useCookie) {
      const { maxAge, ...attributes } = this.#attributes(request, overrides)
      const age = overrides?.maxAge ?? persistFor ?? maxAge
      reply.setCookie(this.name, signed, {
        ...attributes,
        // a persistent cookie never outlives the session's absolute deadline
        maxAge: age === undefined ? undefined : Math.min(age, secondsLeft)
      })
    }
    noStore(reply)
  }

  /** Tells the client to drop the id: a clearing cookie, and the header sent empty. */
  clear (request: FastifyRequest, reply: FastifyReply): void {
    if (this.#header !== undefined) reply.header(this.#header, '')
    if (this.#useCookie) {
      const { maxAge, ...attributes } = this.#attributes(request, undefined)
      reply.clearCookie(this.name, attributes)
    }
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
