import { TypeGuard } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { Redis, type Cluster } from 'ioredis'
import type { RedisSessionOptions } from '../types/index.js'
import { errors } from './model/errors.js'
import { defaultIdGenerator } from './model/ids.js'
import { dotted } from './model/schema.js'
import { cacheDefaults, defaults, otherNames, SettingsSchema, type CacheSettings, type SessionConfig, type Settings } from './model/settings.js'

const checkSettings = TypeCompiler.Compile(SettingsSchema)
const settingNames = new Set(Object.keys(SettingsSchema.properties))

function invalid (name: string, expected: string): Error {
  return new errors.FST_REDIS_SESSION_INVALID_OPTION(name, expected)
}

function isIoredis (value: unknown): value is Redis | Cluster {
  const client = value as Partial<Redis> | null
  return typeof client === 'object' && client !== null &&
    typeof client.defineCommand === 'function' && typeof client.get === 'function'
}

function resolveSecrets (secret: unknown): string[] {
  const list = Array.isArray(secret) ? secret : [secret]
  if (list.length === 0) throw invalid('secret', 'must be a non-empty array of strings of at least 32 characters')
  list.forEach((value: unknown, i: number) => {
    if (typeof value !== 'string' || value.length < 32) {
      const name = Array.isArray(secret) ? `secret[${i}]` : 'secret'
      throw invalid(name, 'must be a string of at least 32 characters')
    }
  })
  return [...list] as string[]
}

function resolveClient (opts: RedisSessionOptions): { client: Redis | Cluster, ownsClient: boolean } {
  if (opts.client !== undefined && opts.redis !== undefined) throw invalid('client', 'and "redis" exclude each other: give one')
  if (opts.client !== undefined) {
    if (!isIoredis(opts.client)) throw invalid('client', 'must be an ioredis Redis or Cluster instance')
    return { client: opts.client, ownsClient: false }
  }
  if (typeof opts.redis === 'string') return { client: new Redis(checkRedisUrl(opts.redis), { lazyConnect: true }), ownsClient: true }
  if (typeof opts.redis === 'object' && opts.redis !== null) return { client: new Redis({ ...opts.redis, lazyConnect: true }), ownsClient: true }
  throw invalid('client', 'or "redis" is required (an ioredis client, or a Redis URL or ioredis options)')
}

/**
 * A `redis` string must be a redis:// or rediss:// URL, or a Unix socket path: ioredis would take
 * `http://host` for a socket path and an empty string for localhost, and throw a bare TypeError
 * for anything else.
 */
function checkRedisUrl (url: string): string {
  if (url.startsWith('/')) return url
  let protocol: string
  try {
    protocol = new URL(url).protocol
  } catch {
    // not echoed: a mistyped URL may still hold a password
    throw invalid('redis', `must be a redis:// or rediss:// URL or a Unix socket path, and the string given ${url === '' ? 'is empty' : 'is no URL'}`)
  }
  if (protocol !== 'redis:' && protocol !== 'rediss:') {
    throw invalid('redis', `must be a redis:// or rediss:// URL or a Unix socket path, not ${protocol}`)
  }
  return url
}

function pickSettings (opts: Record<string, unknown>): Record<string, unknown> {
  const picked: Record<string, unknown> = { ...defaults, cookie: { ...defaults.cookie } }
  for (const name of Object.keys(opts)) {
    if (opts[name] === undefined) continue
    if (name === 'cookie' && typeof opts.cookie === 'object' && opts.cookie !== null) {
      picked.cookie = { ...defaults.cookie, ...opts.cookie }
    } else if (settingNames.has(name)) {
      picked[name] = opts[name]
    } else if (!otherNames.has(name)) {
      throw invalid(name, 'is not a known option')
    }
  }
  return picked
}

function validateSettings (picked: Record<string, unknown>): Settings {
  if (checkSettings.Check(picked)) return picked
  // Check() failed, so there is at least one error
  const first = checkSettings.Errors(picked).First()!
  throw invalid(dotted(first.path), `is invalid: ${first.message}`)
}

/** Browsers drop these cookies silently; refuse them at registration instead. */
function checkCookieRules (settings: Settings): void {
  const { cookie } = settings
  // browsers match the prefixes case-insensitively (RFC 6265bis): "__host-sid" is held to the same rules
  const cookieName = settings.cookieName.toLowerCase()
  if (cookieName.startsWith('__host-') && (cookie.secure !== true || cookie.path !== '/' || cookie.domain !== undefined)) {
    throw invalid('cookieName', 'starting with "__Host-" needs cookie.secure: true, cookie.path: "/" and no cookie.domain')
  }
  if (cookieName.startsWith('__secure-') && cookie.secure !== true) {
    throw invalid('cookieName', 'starting with "__Secure-" needs cookie.secure: true')
  }
  if (cookie.sameSite === 'none' && cookie.secure === false) {
    throw invalid('cookie.sameSite', '"none" needs cookie.secure true or "auto"')
  }
  if (cookie.partitioned && cookie.secure === false) {
    throw invalid('cookie.partitioned', 'needs cookie.secure true or "auto"')
  }
}

/** The local cache's settings, or undefined when it is off; `refreshEvery` must leave the idle expiry room to slide. */
function resolveCache ({ cache, ttl }: Settings): CacheSettings | undefined {
  if (cache === undefined || cache === false) return undefined
  const given = cache === true ? {} : cache
  const resolved = {
    max: given.max ?? cacheDefaults.max,
    lease: given.lease ?? cacheDefaults.lease,
    refreshEvery: given.refreshEvery ?? ttl / 10
  }
  if (resolved.refreshEvery >= ttl) throw invalid('cache.refreshEvery', `must be less than ttl (${ttl} s)`)
  return resolved
}

/** Validates the options (never mutating them) and returns the resolved config. */
export function resolveOptions (opts: RedisSessionOptions): SessionConfig {
  if (typeof opts !== 'object' || opts === null) throw invalid('options', 'must be an object')
  const settings = validateSettings(pickSettings(opts as unknown as Record<string, unknown>))
  checkCookieRules(settings)
  // a header name given but never read is a mistake, not a setting
  if (opts.header !== undefined && settings.idFrom === 'cookie') throw invalid('header', 'is read only with idFrom "header" or "both"')
  const secrets = resolveSecrets(opts.secret)
  const idGenerator = opts.idGenerator ?? defaultIdGenerator
  if (typeof idGenerator !== 'function') throw invalid('idGenerator', 'must be a function returning a string')
  if (opts.schema !== undefined && !TypeGuard.IsObject(opts.schema)) throw invalid('schema', 'must be a TypeBox Type.Object schema')
  const cache = resolveCache(settings)
  const client = resolveClient(opts)
  if (cache !== undefined && client.client.isCluster) throw new errors.FST_REDIS_SESSION_CACHE_CLUSTER()
  return { ...settings, ...client, secrets, idGenerator, schema: opts.schema, cache }
}
