import { Type, type TObject, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { Redis, Cluster } from 'ioredis'
import type { SessionOrigin } from '../../types/index.js'
import { errors } from './errors.js'
import { dotted } from './schema.js'

// The options' plain-data part, its defaults and the resolved settings every layer reads;
// lib/options.ts parses what a user passes into them.

const CookieSchema = Type.Object({
  path: Type.String({ minLength: 1 }),
  domain: Type.Optional(Type.String({ minLength: 1 })),
  httpOnly: Type.Boolean(),
  secure: Type.Union([Type.Boolean(), Type.Literal('auto')]),
  sameSite: Type.Union([Type.Literal('lax'), Type.Literal('strict'), Type.Literal('none'), Type.Boolean()]),
  partitioned: Type.Boolean(),
  maxAge: Type.Optional(Type.Integer({ minimum: 1 }))
}, { additionalProperties: false })

const CacheSchema = Type.Object({
  max: Type.Optional(Type.Integer({ minimum: 1 })),
  lease: Type.Optional(Type.Integer({ minimum: 1 })),
  refreshEvery: Type.Optional(Type.Number({ exclusiveMinimum: 0 }))
}, { additionalProperties: false })

// an RFC 9110 token: what a cookie name (RFC 6265) and a header field name must be
const TOKEN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"

/** The plain-data part of the options, after defaults. */
export const SettingsSchema = Type.Object({
  cookieName: Type.String({ pattern: TOKEN }),
  cookie: CookieSchema,
  idFrom: Type.Union([Type.Literal('cookie'), Type.Literal('header'), Type.Literal('both')]),
  header: Type.String({ pattern: TOKEN }),
  prefix: Type.String(),
  ttl: Type.Integer({ minimum: 1 }),
  absoluteTtl: Type.Integer({ minimum: 1 }),
  rolling: Type.Boolean(),
  saveUninitialized: Type.Boolean(),
  timeout: Type.Integer({ minimum: 1 }),
  maxBytes: Type.Integer({ minimum: 256 }),
  userKey: Type.Optional(Type.String({ minLength: 1 })),
  rotateEvery: Type.Optional(Type.Integer({ minimum: 1 })),
  rotateGrace: Type.Integer({ minimum: 1 }),
  trackClient: Type.Boolean(),
  hashIds: Type.Boolean(),
  cache: Type.Optional(Type.Union([Type.Boolean(), CacheSchema]))
}, { additionalProperties: false })

export type Settings = Static<typeof SettingsSchema>
export type CookieSettings = Static<typeof CookieSchema>

/** The one place defaults live (README's options table mirrors it). */
export const defaults: Settings = {
  cookieName: 'sid',
  cookie: { path: '/', httpOnly: true, secure: 'auto', sameSite: 'lax', partitioned: false },
  idFrom: 'cookie',
  header: 'x-session-id',
  prefix: 'sess:',
  ttl: 86400,
  absoluteTtl: 604800,
  rolling: true,
  saveUninitialized: false,
  timeout: 2000,
  maxBytes: 65536,
  rotateGrace: 30,
  trackClient: false,
  hashIds: true
}

/** The options that are not plain data (checked one by one in lib/options.ts). */
export const otherNames = new Set(['client', 'redis', 'secret', 'idGenerator', 'schema'])

const checkCookieOverrides = TypeCompiler.Compile(Type.Partial(CookieSchema))
const cookieNames = Object.keys(CookieSchema.properties)

/** The local cache's defaults; `refreshEvery` (seconds) defaults to a tenth of `ttl`. */
export const cacheDefaults = { max: 10_000, lease: 500 }

/** The local cache's settings, resolved. */
export interface CacheSettings {
  max: number
  /** ms */
  lease: number
  /** s */
  refreshEvery: number
}

export interface SessionConfig extends Omit<Settings, 'cache'> {
  /** Undefined: no local cache. */
  cache: CacheSettings | undefined
  client: Redis | Cluster
  /** True when the plugin created the client and must close it. */
  ownsClient: boolean
  secrets: string[]
  idGenerator: (origin: SessionOrigin) => string
  schema: TObject | undefined
}

/**
 * The cookie attributes among a session's `options()` (other fields, such as the `userInfo`
 * @fastify/csrf-protection passes, are not the cookie's), or undefined when there are none.
 */
export function cookieOverrides (options: unknown): Partial<CookieSettings> | undefined {
  if (typeof options !== 'object' || options === null) {
    throw new errors.FST_REDIS_SESSION_INVALID_VALUE('(options)', 'session.options() takes an object of cookie attributes')
  }
  const picked: Record<string, unknown> = {}
  for (const name of cookieNames) if ((options as Record<string, unknown>)[name] !== undefined) picked[name] = (options as Record<string, unknown>)[name]
  if (Object.keys(picked).length === 0) return undefined
  if (checkCookieOverrides.Check(picked)) return picked
  const first = checkCookieOverrides.Errors(picked).First()!
  throw new errors.FST_REDIS_SESSION_INVALID_VALUE(`(options) ${dotted(first.path)}`, first.message)
}
