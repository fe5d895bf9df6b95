// Every contestant, as the bench process sees it (labels, where the session id travels) and as its
// server builds it. Server-side modules are imported lazily, so the bench process stays light.
// A contestant's id travels in the cookie `cookieName` (null: no sessions) or, with `idHeader`, in
// that request header.
import { randomBytes } from 'node:crypto'
import diagnostics from 'node:diagnostics_channel'

export const SECRET = 'benchmark-secret-0123456789-abcdefghijklmnop'
export const TTL = 86400

/** @typedef {{ get(req: any, key: string): unknown, set(req: any, key: string, value: unknown): void, increment(req: any, key: string): number }} Access */

const sessionApi = {
  get: (req, key) => req.session.get(key),
  set: (req, key, value) => req.session.set(key, value),
  // a read-modify-write, as an app does with a plugin that has no atomic increment
  increment: (req, key) => {
    const next = (req.session.get(key) ?? 0) + 1
    req.session.set(key, next)
    return next
  }
}

/** The cache as the plugin-cache contestant and `--baseline REF+cache` set it up. */
const CACHE = { cache: { max: 20_000, lease: 500 } }

/** No session at all: a counter the routes read and never change. */
async function bare () {
  const store = { n: 0 }
  return { get: (req, key) => store[key], set: () => {}, increment: () => 1 }
}

export const contestants = {
  fastify: {
    label: 'Fastify, no sessions',
    short: 'Fastify (no sessions)',
    kind: 'ceiling',
    cookieName: null,
    build: bare
  },
  // the same ceiling, sent the very requests a session plugin gets: what Node's HTTP parser and the
  // load generator spend on a Cookie header is not the plugin's cost
  'fastify-cookie': {
    label: 'Fastify, no sessions, sent the same session cookies',
    short: 'Fastify (no sessions, same cookies)',
    kind: 'ceiling',
    cookieName: null,
    sendsCookiesOf: 'plugin-ap',
    build: bare
  },
  hook: {
    label: 'hand-written hook: 1 GETEX / SET EX (ioredis)',
    short: 'minimal hook',
    kind: 'floor',
    cookieName: 'sid',
    build: (app, env) => minimalHook(app, env, false)
  },
  'hook-ap': {
    label: 'hand-written hook: 1 GETEX / SET EX (ioredis, auto-pipelining)',
    short: 'minimal hook + auto-pipelining',
    kind: 'floor',
    cookieName: 'sid',
    build: (app, env) => minimalHook(app, env, true)
  },
  'plugin-ap': {
    label: 'fastify-session-redis (ioredis, auto-pipelining)',
    short: 'fastify-session-redis + auto-pipelining',
    kind: 'ours',
    cookieName: 'sid',
    build: (app, env) => ourPlugin(app, env, { autoPipelining: true, schema: false })
  },
  // reads answered from process memory, kept coherent by Redis client tracking (docs/local-cache.md)
  'plugin-cache': {
    label: 'fastify-session-redis with `cache` (ioredis, auto-pipelining)',
    short: 'fastify-session-redis + local cache',
    kind: 'ours',
    cookieName: 'sid',
    build: (app, env) => ourPlugin(app, env, { autoPipelining: true, schema: false, ...CACHE })
  },
  plugin: {
    label: 'fastify-session-redis (ioredis)',
    short: 'fastify-session-redis',
    kind: 'ours',
    cookieName: 'sid',
    build: (app, env) => ourPlugin(app, env, { autoPipelining: false, schema: false })
  },
  'plugin-schema': {
    label: 'fastify-session-redis with `schema` (ioredis, auto-pipelining)',
    short: 'fastify-session-redis + schema + auto-pipelining',
    kind: 'ours',
    cookieName: 'sid',
    build: (app, env) => ourPlugin(app, env, { autoPipelining: true, schema: true })
  },
  // what the no-lost-updates guarantee costs: the same plugin, but saving with a plain SET EX
  'plugin-set': {
    label: 'fastify-session-redis, saving with a plain SET EX instead of its check-and-set script (benchmark only: loses updates)',
    short: 'fastify-session-redis, plain SET save',
    kind: 'variant',
    cookieName: 'sid',
    build: (app, env) => ourPlugin(app, env, { autoPipelining: true, schema: false, plainSet: true })
  },
  // what hashing ids at rest costs: the same plugin, keying sessions by the raw id
  'plugin-unhashed': {
    label: 'fastify-session-redis with `hashIds: false` (ioredis, auto-pipelining)',
    short: 'fastify-session-redis, ids not hashed',
    kind: 'variant',
    cookieName: 'sid',
    build: (app, env) => ourPlugin(app, env, { autoPipelining: true, schema: false, hashIds: false })
  },
  // what carrying the id in a header costs: the same plugin with `idFrom: 'header'`, no cookie
  'plugin-header': {
    label: 'fastify-session-redis with `idFrom: \'header\'` (ioredis, auto-pipelining)',
    short: 'fastify-session-redis, id in a header',
    kind: 'variant',
    cookieName: null,
    idHeader: 'x-session-id',
    build: (app, env) => ourPlugin(app, env, { autoPipelining: true, schema: false, idFrom: 'header' })
  },
  // what listening to the lifecycle events costs (nobody listening is plugin-ap)
  'plugin-events': {
    label: 'fastify-session-redis, every event channel subscribed (ioredis, auto-pipelining)',
    short: 'fastify-session-redis, events subscribed',
    kind: 'variant',
    cookieName: 'sid',
    build: async (app, env) => {
      await subscribeToEvents()
      return await ourPlugin(app, env, { autoPipelining: true, schema: false })
    }
  },
  // what @fastify/session's property style costs: the same plugin, data read and assigned as properties
  'plugin-props': {
    label: 'fastify-session-redis, data as properties (`req.session.n = x`; ioredis, auto-pipelining)',
    short: 'fastify-session-redis, property style',
    kind: 'variant',
    cookieName: 'sid',
    build: async (app, env) => {
      await ourPlugin(app, env, { autoPipelining: true, schema: false })
      return {
        get: (req, key) => req.session[key],
        set: (req, key, value) => { req.session[key] = value },
        increment: (req, key) => (req.session[key] = (req.session[key] ?? 0) + 1)
      }
    }
  },
  'fastify-session': fastifySessionWith('connect-redis'),
  'fastify-session-store': fastifySessionWith('fastify-session-redis-store'),
  mgcrea: {
    label: '@mgcrea/fastify-session + @mgcrea/fastify-session-redis-store',
    short: '@mgcrea/fastify-session + redis store',
    kind: 'peer',
    cookieName: 'Session',
    build: async (app, env) => {
      const { default: session } = await import('@mgcrea/fastify-session')
      const { RedisStore } = await import('@mgcrea/fastify-session-redis-store')
      await app.register((await import('@fastify/cookie')).default)
      await app.register(session, {
        secret: SECRET,
        store: new RedisStore({ client: env.client(false), prefix: env.prefix, ttl: TTL }),
        cookie: { maxAge: TTL }
      })
      return sessionApi
    }
  }
}

/** @fastify/session with a store package that exports a connect-redis-style `RedisStore`. */
function fastifySessionWith (storePackage) {
  return {
    label: `@fastify/session + ${storePackage}`,
    short: `@fastify/session + ${storePackage}`,
    kind: 'peer',
    cookieName: 'sessionId',
    build: async (app, env) => {
      const { default: session } = await import('@fastify/session')
      const { RedisStore } = await import(storePackage)
      await app.register((await import('@fastify/cookie')).default)
      // defaults, except that the cookie must be allowed over the plain-HTTP loopback
      await app.register(session, {
        secret: SECRET,
        cookie: { secure: false },
        store: new RedisStore({ client: env.client(false), prefix: env.prefix, ttl: TTL })
      })
      return sessionApi
    }
  }
}

/**
 * A `baseline-<short>` contestant: the plugin built at an earlier commit (baselines.js), set up as
 * plugin-ap with only the options every commit knows.
 */
export function addBaseline ({ name, short, module, cache }) {
  contestants[name] = {
    label: `fastify-session-redis at ${short}${cache ? ' with `cache`' : ''} (ioredis, auto-pipelining)`,
    short: `fastify-session-redis at ${short}${cache ? ' + local cache' : ''}`,
    kind: 'baseline',
    cookieName: 'sid',
    build: (app, env) => ourPlugin(app, env, { autoPipelining: true, schema: false, module, ...(cache ? CACHE : {}) })
  }
}

/** Counts every message on every channel the plugin publishes and sums their durations: the least a metrics subscriber does. */
async function subscribeToEvents () {
  const { channels } = await import('../dist/index.js')
  const heard = { messages: 0, durationMs: 0 }
  for (const name of Object.values(channels)) {
    diagnostics.subscribe(name, (message) => {
      heard.messages++
      heard.durationMs += message.durationMs ?? 0
    })
  }
}

/** The plugin from `module` (default: this tree's build); `extra` options are passed as they are. */
async function ourPlugin (app, env, { autoPipelining, schema, plainSet = false, module = '../dist/index.js', ...extra }) {
  const { default: redisSession } = await import(module)
  const client = env.client(autoPipelining)
  if (plainSet) saveWithPlainSet(client)
  const options = {
    client,
    secret: SECRET,
    prefix: env.prefix,
    ttl: TTL,
    // room for the 64 KB sessions of the size scale
    maxBytes: 1 << 20,
    ...extra
  }
  if (schema) {
    const { Type } = await import('@sinclair/typebox')
    options.schema = Type.Object({ n: Type.Optional(Type.Integer()), blob: Type.Optional(Type.String()) })
  }
  await app.register(redisSession, options)
  return {
    get: (req, key) => req.session.get(key),
    set: (req, key, value) => req.session.set(key, value),
    increment: (req, key) => req.session.increment(key)
  }
}

/**
 * Replaces the save script's EVALSHA with `SET key document PX ttl` (or `PXAT`), which the plugin
 * reads as a successful save: everything else (load, operations, serializing, the writer) stays
 * as it is. The save is the only script call with five arguments after its key (version,
 * document, 'PX' or 'PXAT', its value, configured ttl).
 */
function saveWithPlainSet (client) {
  const evalsha = client.evalsha
  client.evalsha = function plainSetSave (sha, numberOfKeys, key, ...args) {
    if (args.length !== 5) return evalsha.call(this, sha, numberOfKeys, key, ...args)
    return client.set(key, args[1], args[2], args[3]).then(() => 1)
  }
}

/**
 * The least work a Redis session can do: a signed cookie holding the id, one GETEX (which also
 * refreshes the idle TTL) when a cookie comes in, one SET EX when the handler changed something.
 * No expiry bookkeeping, no concurrency control: a floor to measure against, not a session library.
 */
async function minimalHook (app, env, autoPipelining) {
  const client = env.client(autoPipelining)
  const prefix = env.prefix
  await app.register((await import('@fastify/cookie')).default, { secret: SECRET })
  app.decorateRequest('sess', null)
  app.addHook('onRequest', async function loadSession (req) {
    const raw = req.cookies.sid
    if (raw !== undefined) {
      const { valid, value } = req.unsignCookie(raw)
      if (valid) {
        const text = await client.getex(prefix + value, 'EX', TTL)
        if (text !== null) {
          req.sess = { id: value, data: JSON.parse(text), dirty: false }
          return
        }
      }
    }
    req.sess = { id: null, data: {}, dirty: false }
  })
  app.addHook('onSend', async function saveSession (req, reply, payload) {
    const sess = req.sess
    if (sess !== null && sess.dirty) {
      if (sess.id === null) {
        sess.id = randomBytes(32).toString('base64url')
        reply.setCookie('sid', sess.id, { signed: true, path: '/', httpOnly: true, sameSite: 'lax' })
      }
      await client.set(prefix + sess.id, JSON.stringify(sess.data), 'EX', TTL)
    }
    return payload
  })
  return {
    get: (req, key) => req.sess.data[key],
    set: (req, key, value) => {
      req.sess.data[key] = value
      req.sess.dirty = true
    },
    increment: (req, key) => {
      const data = req.sess.data
      data[key] = (data[key] ?? 0) + 1
      req.sess.dirty = true
      return data[key]
    }
  }
}
