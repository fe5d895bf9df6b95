import { test, type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { sign } from '@fastify/cookie'
import { Redis } from 'ioredis'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import { SECRET, buildApp, keysUnder, sessionCookie, setCookies, sessionKey } from './helpers/app.js'
import { startRedis, waitFor, type RedisServer } from './helpers/redis-server.js'

const TIMEOUT = 300
const UNAVAILABLE = 'FST_REDIS_SESSION_STORE_UNAVAILABLE'

/** A client with ioredis's default retry and offline-queue settings, as an app would have. */
function appClient (t: Test, url: string): Redis {
  const client = new Redis(url)
  client.on('error', () => {}) // connection errors are expected here; the plugin reports them per request
  t.teardown(() => { client.disconnect() })
  return client
}

/** A private redis-server, an app on it with a short timeout, and an admin connection to break things. */
async function setup (t: Test, options: { routes?: (app: FastifyInstance) => void, redisArgs?: string[] } = {}) {
  const server = await startRedis(options.redisArgs)
  t.teardown(() => server.stop())
  const admin = appClient(t, server.url)
  const built = await buildApp(t, { client: appClient(t, server.url), session: { timeout: TIMEOUT }, routes: options.routes })
  return { ...built, server, admin }
}

/** Checks the coded 503 (a request that hung would end the test at tap's timeout instead). */
function unavailable (t: Test, res: LightMyRequestResponse, name: string): void {
  t.equal(res.statusCode, 503, `${name}: 503`)
  t.equal(res.json().code, UNAVAILABLE, `${name}: code`)
}

/**
 * Checks a 503 that a stalled Redis caused: the command's time limit is what ended the wait, not a
 * refusal. When it comes is measured by no test here (docs/failures.md, benchmarks/outage.js).
 */
function failedAtTimeout (t: Test, res: LightMyRequestResponse, name: string): void {
  unavailable(t, res, name)
  t.match(res.json().message, `took longer than ${TIMEOUT} ms`, `${name}: ended by the timeout`)
}

/** Repeats a request until it succeeds: at most 40 tries over 10 s; any answer but a 200 or the 503 fails. */
async function untilOk (app: FastifyInstance, options: InjectOptions): Promise<LightMyRequestResponse> {
  let res: LightMyRequestResponse | undefined
  await waitFor('a 200', async () => {
    res = await app.inject(options)
    if (res.statusCode !== 200 && (res.statusCode !== 503 || res.json().code !== UNAVAILABLE)) throw new Error(`unexpected ${res.statusCode}: ${res.body}`)
    return res.statusCode === 200
  }, { timeout: 10_000, tries: 40 })
  return res!
}

test('Redis down when the app starts: registration succeeds, session requests get 503 until it is back, then work', async (t) => {
  const server: RedisServer = await startRedis()
  t.teardown(() => server.stop())
  await server.kill()
  const modes: Array<[string, object]> = [
    ['a client the app passed', { client: appClient(t, server.url) }],
    ['a connection the plugin made', { session: { client: undefined, redis: server.url, timeout: TIMEOUT } }]
  ]
  const apps: Array<{ app: FastifyInstance, prefix: string }> = []
  for (const [mode, options] of modes) {
    const { app, prefix } = await buildApp(t, { session: { timeout: TIMEOUT }, ...options })
    apps.push({ app, prefix })
    t.ok(app.hasRequestDecorator('session'), `${mode}: registered while Redis is down`)
    t.equal((await app.inject({ url: '/untouched' })).statusCode, 200, `${mode}: a request without a session is served`)
    unavailable(t, await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } }), `${mode}: a write`)
    const cookie = `sid=${encodeURIComponent(sign(randomBytes(32).toString('base64url'), SECRET))}`
    unavailable(t, await app.inject({ url: '/read', headers: { cookie } }), `${mode}: a read`)
  }
  await server.restart()
  const check = new Redis(server.url)
  t.teardown(() => { check.disconnect() })
  for (const [i, { app, prefix }] of apps.entries()) {
    const written = await untilOk(app, { method: 'POST', url: '/write', payload: { back: i } })
    const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(written) } })
    t.same(read.json().data, { back: i }, `${modes[i][0]}: the same app works once Redis is back`)
    t.equal(await check.exists(sessionKey(prefix, written.json().id as string)), 1, `${modes[i][0]}: the write landed`)
  }
})

test('a stalled Redis (SIGSTOP): requests fail with 503 at the timeout, then succeed once it resumes', async (t) => {
  const { app, server } = await setup(t, {
    routes (app) {
      app.get('/static', { config: { session: false } }, async () => 'asset')
    }
  })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { user: 'alice' } })
  const cookie = sessionCookie(created)
  server.pause()
  try {
    failedAtTimeout(t, await app.inject({ url: '/read', headers: { cookie } }), 'a read')
    failedAtTimeout(t, await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } }), 'a new session')
    // the session of a request with a cookie is loaded before the route runs, used or not
    failedAtTimeout(t, await app.inject({ url: '/untouched', headers: { cookie } }), 'a route that ignores the session, with a cookie')
    for (const [name, options] of [
      ['a route that ignores the session, without a cookie', { url: '/untouched' }],
      ['a route with config.session false, with a cookie', { url: '/static', headers: { cookie } }]
    ] as const) {
      // had it waited for the stalled Redis, it would have failed with the 503
      t.equal((await app.inject(options)).statusCode, 200, `${name}: served`)
    }
  } finally {
    server.resume()
  }
  const read = await app.inject({ url: '/read', headers: { cookie } })
  t.same(read.json().data, { user: 'alice' })
})

test('CLIENT PAUSE stalls every command: a read fails at the timeout, not when the pause ends', async (t) => {
  const { app, admin } = await setup(t)
  const created = await app.inject({ method: 'POST', url: '/write', payload: { user: 'alice' } })
  const cookie = sessionCookie(created)
  await admin.client('PAUSE', String(TIMEOUT * 4), 'ALL')
  failedAtTimeout(t, await app.inject({ url: '/read', headers: { cookie } }), 'a read')
  const read = await untilOk(app, { url: '/read', headers: { cookie } })
  t.same(read.json().data, { user: 'alice' })
})

test('a save that fails turns the response into an error, and the stored session is the old one, intact', async (t) => {
  const { app, client, prefix, admin } = await setup(t, {
    routes (app) {
      const refuseWrites = () => admin.config('SET', 'min-replicas-to-write', '1')
      app.post('/change', async (req) => {
        req.session.set('user', 'mallory')
        await refuseWrites()
        return 'changed'
      })
      app.post('/change-and-redirect', async (req, reply) => {
        req.session.set('user', 'mallory')
        await refuseWrites()
        return reply.redirect('/done')
      })
      app.post('/save-now', async (req) => {
        req.session.set('user', 'mallory')
        await refuseWrites()
        await req.session.save()
        return 'saved'
      })
      app.post('/logout', async (req) => {
        await refuseWrites()
        await req.session.destroy()
        return 'bye'
      })
      app.post('/login', async (req) => {
        await refuseWrites()
        await req.session.regenerate()
        return 'welcome'
      })
    }
  })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { user: 'alice' } })
  const cookie = sessionCookie(created)
  const key = sessionKey(prefix, created.json().id as string)
  const stored = await client.get(key)

  for (const url of ['/change', '/change-and-redirect', '/save-now', '/logout', '/login']) {
    const res = await app.inject({ method: 'POST', url, headers: { cookie } })
    await admin.config('SET', 'min-replicas-to-write', '0')
    t.equal(res.statusCode, 503, `${url}: an error, not success`)
    t.equal(res.json().code, UNAVAILABLE, `${url}: code`)
    t.equal(res.headers.location, undefined, `${url}: no redirect to a page that expects the change`)
    t.same(setCookies(res), [], `${url}: no cookie change`)
    t.equal(await client.get(key), stored, `${url}: the stored session is the old one, byte for byte`)
    const read = await app.inject({ url: '/read', headers: { cookie } })
    t.same(read.json().data, { user: 'alice' }, `${url}: and the old cookie still opens it`)
  }

  // a brand-new session whose first save fails: no cookie, nothing stored
  const res = await app.inject({ method: 'POST', url: '/change' })
  await admin.config('SET', 'min-replicas-to-write', '0')
  t.equal(res.json().code, UNAVAILABLE)
  t.same(setCookies(res), [])
  t.same(await keysUnder(client, prefix), [key])
})

test('a save stalled past the timeout is reported as failed; Redis may still apply it when it resumes', async (t) => {
  const { app, client, prefix, admin } = await setup(t, {
    routes (app) {
      app.post('/change', async (req) => {
        req.session.set('user', 'mallory')
        // write commands (scripts included) wait until the pause ends
        await admin.client('PAUSE', String(TIMEOUT * 3), 'WRITE')
        return 'changed'
      })
    }
  })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { user: 'alice' } })
  const cookie = sessionCookie(created)
  const key = sessionKey(prefix, created.json().id as string)
  failedAtTimeout(t, await app.inject({ method: 'POST', url: '/change', headers: { cookie } }), 'the stalled save')
  // once the pause ends the queued save runs: the document is one whole version, old or new, never a mix
  const read = await untilOk(app, { url: '/read', headers: { cookie } })
  t.ok(['alice', 'mallory'].includes(read.json().data.user as string))
  t.match(await client.get(key), /^\{"v":[12],"a":\d+,"t":0,"c":\d+,"d":\{"user":"(alice|mallory)"\}\}$/)
})
