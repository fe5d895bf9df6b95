import { Signer } from '@fastify/cookie'
import type { FastifyBaseLogger, FastifyReply } from 'fastify'
import type { SessionOrigin } from '../../types/index.js'
import type { CookieSettings } from '../model/settings.js'
import { isValidId, type SessionIds } from '../model/ids.js'
import type { SessionStats } from '../model/stats.js'
import { logBindings } from '../model/errors.js'
// id (≤ 128) + '.' + base64 HMAC-SHA256 (43): anything longer is rejected before any HMAC work
const MAX_SIGNED_LENGTH = 128 + 1 + 43
/** Verified cookie values remembered per instance (only valid ones, oldest out first), to skip their HMAC (docs/performance.md). */
export const REMEMBERED_COOKIES = 10_000
/** The longest Cookie header remembered whole (`remembered`): at most 10,000 of them, 5 MB. */
export const REMEMBERED_HEADER_LENGTH = 512

/** Sets `key` in a memo of at most REMEMBERED_COOKIES entries, the oldest out first. */
function remember<V> (memo: Map<string, V>, key: string, value: V): void {
  if (memo.size >= REMEMBERED_COOKIES) memo.delete(memo.keys().next().value as string)
  memo.set(key, value)
}

/** A verified cookie's ids, worked out once per cookie value. */
export interface CookieId extends SessionIds {
  /** Signed by an older secret: re-issue it signed by the current one. */
  readonly renew: boolean
}

type ParseCookie = (header: string) => Record<string, string | undefined>
/** Cookie attributes as serialized: `secure` is decided by then ('auto' resolved for the origin). */
type Serialized = Omit<CookieSettings, 'secure'> & { secure: boolean, expires?: Date }
type SerializeCookie = (name: string, value: string, options: Serialized) => string

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

export interface SessionCookieOptions {
  /** The cookie's name (`cookieName`). */
  name: string
  /** The newest signs, every one verifies (`secret`). */
  secrets: string[]
  /** The cookie's attributes (`cookie`). */
  settings: CookieSettings
  /** @fastify/cookie's parser and serializer, as the app registered it. */
  parse: ParseCookie
  serialize: SerializeCookie
  /** An id as Redis knows it (`storedIdOf` in lib/model/ids.ts). */
  storedIdOf: (id: string) => string
  /** Where the id travels; the cookie alone when not given. */
  transport?: Transport
}

/** Reads, signs and writes the session cookie; the only code that knows the secrets. */
export class SessionCookie {
  readonly name: string
  readonly #signer: InstanceType<typeof Signer>
  readonly #settings: CookieSettings
  readonly #parse: ParseCookie
  readonly #serialize: SerializeCookie
  readonly #storedIdOf: (id: string) => string
  readonly #verified = new Map<string, CookieId>()
  /** Whole Cookie headers that verified, as `#verified` (only while the cookie alone carries the id). */
  readonly #headers = new Map<string, CookieId>()
  readonly #useCookie: boolean
  /** The header's name, lower-cased as Node gives request headers; undefined with idFrom 'cookie'. */
  readonly #header: string | undefined

  constructor ({ name, secrets, settings, parse, serialize, storedIdOf, transport = { idFrom: 'cookie', header: '' } }: SessionCookieOptions) {
    this.name = name
    this.#storedIdOf = storedIdOf
    this.#signer = new Signer(secrets, 'sha256')
    this.#settings = settings
    this.#parse = parse
    this.#serialize = serialize
    this.#useCookie = transport.idFrom !== 'header'
    this.#header = transport.idFrom === 'cookie' ? undefined : transport.header.toLowerCase()
  }

  /**
   * The raw signed value the headers carry, if any: the session header's when it holds one (an
   * empty header is none), else the cookie's (from `parsed`, the cookies @fastify/cookie parsed,
   * when given). A header that fails verification is refused, never passed over for the cookie.
   */
  raw (headers: Record<string, string | string[] | undefined>, parsed?: Record<string, string | undefined>): string | undefined {
    if (this.#header !== undefined) {
      const sent = headers[this.#header]
      // a repeated header arrives over HTTP joined with ", ": no valid value, refused by verify();
      // a list (given to fromHeaders) is joined alike, never passed over for the cookie
      const value = Array.isArray(sent) ? sent.join(', ') : sent
      if (typeof value === 'string' && value !== '') return value
    }
    const header = headers.cookie
    if (typeof header !== 'string' || !this.#useCookie) return undefined
    return (parsed ?? this.#parse(header))[this.name]
  }

  /**
   * The id a Cookie header verified to before, when the very same text comes again: a client sends
   * the same header request after request, and looking the whole text up skips the parse that
   * `raw` needs before `verify` (docs/performance.md). Only headers that verified are kept, none
   * longer than REMEMBERED_HEADER_LENGTH, and none while an id header may carry the id instead.
   */
  remembered (headers: Record<string, string | string[] | undefined>): CookieId | undefined {
    const header = headers.cookie
    return typeof header === 'string' && this.#header === undefined ? this.#headers.get(header) : undefined
  }

  /** Keeps `id`, verified from `headers`, for `remembered`. */
  remember (headers: Record<string, string | string[] | undefined>, id: CookieId): void {
    const header = headers.cookie
    if (this.#header !== undefined || typeof header !== 'string' || header.length > REMEMBERED_HEADER_LENGTH) return
    remember(this.#headers, header, id)
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
    const verified = Object.freeze({ id, renew, storedId: this.#storedIdOf(id) })
    remember(this.#verified, value, verified)
    return verified
  }

  /**
   * Sends the signed id. The cookie's Max-Age is this response's `options({ maxAge })`, else
   * `persistFor` (a remembered session's remaining life), else the configured `cookie.maxAge`.
   */
  write (origin: SessionOrigin, reply: FastifyReply, id: string, secondsLeft: number, persistFor: number | undefined, overrides?: Partial<CookieSettings>): void {
    const signed = this.#signer.sign(id)
    if (this.#header !== undefined) reply.header(this.#header, signed)
    // a Set-Cookie header of its own: Fastify adds it to any the route or @fastify/cookie sets
    if (this.#useCookie) reply.header('set-cookie', this.#serialized(signed, this.#setting(origin, secondsLeft, persistFor, overrides)))
    noStore(reply)
  }

  /** Tells the client to drop the id: a clearing cookie, and the header sent empty. */
  clear (origin: SessionOrigin, reply: FastifyReply): void {
    if (this.#header !== undefined) reply.header(this.#header, '')
    if (this.#useCookie) reply.header('set-cookie', this.clearHeader(origin))
    noStore(reply)
  }

  /** What `write` would set, as a Set-Cookie header value (for a response the plugin does not send). */
  header (origin: SessionOrigin, id: string, secondsLeft: number, persistFor: number | undefined, overrides?: Partial<CookieSettings>): string {
    return this.#serialized(this.#signer.sign(id), this.#setting(origin, secondsLeft, persistFor, overrides))
  }

  #serialized (signed: string, setting: CookieSettings): string {
    return this.#serialize(this.name, signed, { ...setting, secure: setting.secure === true })
  }

  /** What `clear` would set, as a Set-Cookie header value: as @fastify/cookie's clearCookie, expired in 1970. */
  clearHeader (origin: SessionOrigin): string {
    const clearing = this.#clearing(origin)
    return this.#serialize(this.name, '', { ...clearing, secure: clearing.secure === true, maxAge: 0, expires: new Date(0) })
  }

  #setting (origin: SessionOrigin, secondsLeft: number, persistFor: number | undefined, overrides: Partial<CookieSettings> | undefined): CookieSettings {
    const { maxAge, ...attributes } = this.#attributes(origin, overrides)
    const age = overrides?.maxAge ?? persistFor ?? maxAge
    // a persistent cookie never outlives the session's absolute deadline
    return { ...attributes, maxAge: age === undefined ? undefined : Math.min(age, secondsLeft) }
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

/** The id a raw cookie value names, or null when it is forged or malformed (counted, logged, no Redis call). */
export function verifyCookie (cookie: SessionCookie, stats: SessionStats, log: FastifyBaseLogger, raw: string): CookieId | null {
  const verified = cookie.verify(raw)
  if (verified === null) {
    stats.rejectedCookies++
    log.debug(logBindings, 'fastify-session-redis: rejected a session cookie')
  }
  return verified
}

/** A response that sets or clears a session cookie is never for a shared cache, nor for the Back button. */
function noStore (reply: FastifyReply): void {
  if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store')
}
