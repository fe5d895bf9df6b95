import { test } from 'tap'
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import Fastify from 'fastify'
import fastifyCookie from '@fastify/cookie'
import { Type } from '@sinclair/typebox'
import redisSession from '../lib/index.js'
import type { RedisSessionOptions } from '../types/index.js'
import { SECRET, OLD_SECRET, connect, sharedRedisUrl, buildApp, sessionCookie, setCookies } from './helpers/app.js'
import { waitFor } from './helpers/redis-server.js'

async function registrationError (options: Record<string, unknown>): Promise<{ code?: string, message: string }> {
  const app = Fastify()
  try {
    await app.register(redisSession, options as unknown as RedisSessionOptions)
    await app.ready()
  } catch (err) {
    return err as { code?: string, message: string }
  } finally {
    await app.close()
  }
  throw new Error('registration succeeded')
}

test('wrong options make ready() reject with a code and the option name', async (t) => {
  const client = await connect(t)
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['no options object', { secret: undefined }, 'secret'],
    ['missing secret', { client }, 'secret'],
    ['short secret', { client, secret: 'short' }, 'secret'],
    ['empty secret array', { client, secret: [] }, 'secret'],
    ['short secret in array', { client, secret: [SECRET, 'short'] }, 'secret[1]'],
    ['non-string secret', { client, secret: 42 }, 'secret'],
    ['no client', { secret: SECRET }, 'client'],
    ['client and redis', { client, redis: 'redis://127.0.0.1', secret: SECRET }, 'client'],
    ['not an ioredis client', { client: { get () {} }, secret: SECRET }, 'client'],
    ['unknown option', { client, secret: SECRET, ttll: 5 }, 'ttll'],
    ['ttl not an integer', { client, secret: SECRET, ttl: 1.5 }, 'ttl'],
    ['ttl a string', { client, secret: SECRET, ttl: '60' }, 'ttl'],
    ['ttl zero', { client, secret: SECRET, ttl: 0 }, 'ttl'],
    ['absoluteTtl negative', { client, secret: SECRET, absoluteTtl: -1 }, 'absoluteTtl'],
    ['rolling not boolean', { client, secret: SECRET, rolling: 'yes' }, 'rolling'],
    ['saveUninitialized not boolean', { client, secret: SECRET, saveUninitialized: 1 }, 'saveUninitialized'],
    ['timeout zero', { client, secret: SECRET, timeout: 0 }, 'timeout'],
    ['maxBytes too small', { client, secret: SECRET, maxBytes: 10 }, 'maxBytes'],
    ['prefix not a string', { client, secret: SECRET, prefix: 5 }, 'prefix'],
    ['cookie name with a space', { client, secret: SECRET, cookieName: 'my sid' }, 'cookieName'],
    ['cookie name empty', { client, secret: SECRET, cookieName: '' }, 'cookieName'],
    ['cookie not an object', { client, secret: SECRET, cookie: 'yes' }, 'cookie'],
    ['unknown cookie attribute', { client, secret: SECRET, cookie: { expires: 5 } }, 'cookie.expires'],
    ['bad sameSite', { client, secret: SECRET, cookie: { sameSite: 'sometimes' } }, 'cookie.sameSite'],
    ['bad secure', { client, secret: SECRET, cookie: { secure: 'maybe' } }, 'cookie.secure'],
    ['maxAge not positive', { client, secret: SECRET, cookie: { maxAge: 0 } }, 'cookie.maxAge'],
    ['sameSite none without secure', { client, secret: SECRET, cookie: { sameSite: 'none', secure: false } }, 'cookie.sameSite'],
    ['partitioned without secure', { client, secret: SECRET, cookie: { partitioned: true, secure: false } }, 'cookie.partitioned'],
    ['__Host- without secure', { client, secret: SECRET, cookieName: '__Host-sid' }, 'cookieName'],
    ['__Host- with a domain', { client, secret: SECRET, cookieName: '__Host-sid', cookie: { secure: true, domain: 'example.com' } }, 'cookieName'],
    ['__Host- with a path', { client, secret: SECRET, cookieName: '__Host-sid', cookie: { secure: true, path: '/app' } }, 'cookieName'],
    ['__Secure- without secure', { client, secret: SECRET, cookieName: '__Secure-sid' }, 'cookieName'],
    ['idGenerator not a function', { client, secret: SECRET, idGenerator: 'abc' }, 'idGenerator'],
    ['schema not TypeBox', { client, secret: SECRET, schema: { type: 'object' } }, 'schema']
  ]
  for (const [name, options, option] of cases) {
    const err = await registrationError(options)
    t.equal(err.code, 'FST_REDIS_SESSION_INVALID_OPTION', `${name}: code`)
    t.match(err.message, `option "${option}"`, `${name}: names ${option}`)
  }
})

test('a secret never appears in a registration error', async (t) => {
  const client = await connect(t)
  const err = await registrationError({ client, secret: [SECRET, 'too-short-secret'] })
  t.notMatch(err.message, 'too-short-secret')
  t.notMatch(err.message, SECRET)
})

test('options that are not an object are refused', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(redisSession, null as unknown as RedisSessionOptions).ready() }, { code: 'FST_REDIS_SESSION_INVALID_OPTION' })
  const other = Fastify()
  t.teardown(() => other.close())
  await t.rejects(async () => { await other.register(redisSession, 42 as unknown as RedisSessionOptions).ready() }, { code: 'FST_REDIS_SESSION_INVALID_OPTION' })
})

test('the caller\'s options object is left untouched', async (t) => {
  const client = await connect(t)
  const cookie = { path: '/' }
  const options = { client, secret: [SECRET], cookie, ttl: 60 }
  const before = JSON.stringify({ ...options, client: null })
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(redisSession, options)
  await app.ready()
  t.equal(JSON.stringify({ ...options, client: null }), before)
  t.same(Object.keys(cookie), ['path'])
})

test('__Host- and __Secure- names work with the options browsers need', async (t) => {
  for (const cookieName of ['__Host-sid', '__Secure-sid']) {
    const { app } = await buildApp(t, { session: { cookieName, cookie: { secure: true } } })
    const res = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
    t.equal(res.cookies[0].name, cookieName)
    t.equal(res.cookies[0].secure, true)
  }
})

test('schema must be a TypeBox object; a valid one is accepted', async (t) => {
  const { app } = await buildApp(t, { session: { schema: Type.Object({ n: Type.Number() }) } })
  const res = await app.inject({ method: 'POST', url: '/increment' })
  t.equal(res.json().n, 1)
})

/** A connection name no other test uses, to find a connection in CLIENT LIST. */
function connectionName (): string {
  return `owned-${randomBytes(6).toString('hex')}`
}

/** Whether the server has a connection of that name. */
async function connected (admin: Redis, name: string): Promise<boolean> {
  return String(await admin.client('LIST')).includes(` name=${name} `)
}

test('the plugin owns a connection made from a URL and closes it on app.close()', async (t) => {
  const admin = await connect(t)
  const name = connectionName()
  const app = Fastify()
  // ioredis takes options from the URL's query
  await app.register(redisSession, { redis: `${await sharedRedisUrl()}?connectionName=${name}`, secret: SECRET })
  app.post('/', async (req) => { req.session.set('a', 1); return 'ok' })
  const res = await app.inject({ method: 'POST', url: '/' })
  t.equal(res.statusCode, 200)
  t.ok(await connected(admin, name), 'the plugin connected')
  await app.close()
  await waitFor('the connection to close', async () => !await connected(admin, name), { timeout: 5000 })
  t.notOk(await connected(admin, name), 'closed after use')
})

test('the plugin owns a connection made from ioredis options, closed even if never used', async (t) => {
  const url = new URL(await sharedRedisUrl())
  const name = connectionName()
  // the plugin's client is out of reach: its disconnect() call is what shows it was closed
  const disconnected: Redis[] = []
  const { disconnect } = Redis.prototype
  Redis.prototype.disconnect = function recordedDisconnect (this: Redis, ...args: Parameters<typeof disconnect>) {
    if (this.options.connectionName === name) disconnected.push(this)
    return disconnect.apply(this, args)
  }
  t.teardown(() => { Redis.prototype.disconnect = disconnect })
  const app = Fastify()
  await app.register(redisSession, { redis: { host: url.hostname, port: Number(url.port), connectionName: name }, secret: SECRET })
  await app.ready()
  await app.close()
  t.equal(disconnected.length, 1, 'closed without ever connecting')
  t.equal(disconnected[0]?.status, 'end')
})

test('a client passed in stays open after app.close()', async (t) => {
  const client = await connect(t)
  const app = Fastify()
  await app.register(redisSession, { client, secret: SECRET })
  await app.ready()
  await app.close()
  t.equal(await client.ping(), 'PONG')
})

test('works alongside an app that registered @fastify/cookie with its own secret', async (t) => {
  const { app } = await buildApp(t, {
    routes: (app) => {
      app.get('/app-cookie', async (_req, reply) => {
        reply.setCookie('pref', 'dark', { signed: true })
        return 'ok'
      })
      app.get('/app-cookie/read', async (req) => req.unsignCookie(req.cookies.pref ?? ''))
    },
    before: async (app) => { await app.register(fastifyCookie, { secret: OLD_SECRET }) }
  })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const cookie = sessionCookie(created)
  const pref = await app.inject({ url: '/app-cookie' })
  const prefCookie = `pref=${pref.cookies[0].value}`
  const read = await app.inject({ url: '/read', headers: { cookie: `${cookie}; ${prefCookie}` } })
  t.same(read.json().data, { a: 1 })
  const own = await app.inject({ url: '/app-cookie/read', headers: { cookie: prefCookie } })
  t.same(own.json(), { valid: true, renew: false, value: 'dark' })
  t.same(setCookies(read), [])
})

test('reads its cookie even when the app\'s @fastify/cookie parses cookies in a later hook', async (t) => {
  const { app } = await buildApp(t, {
    before: async (app) => { await app.register(fastifyCookie, { hook: 'preHandler' }) }
  })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(created) } })
  t.same(read.json().data, { a: 1 })
})
