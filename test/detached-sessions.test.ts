import { test } from 'tap'
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { Writable } from 'node:stream'
import { Signer } from '@fastify/cookie'
import { buildApp, connect, sessionCookie, sharedRedisUrl, SECRET, OLD_SECRET, sessionKey } from './helpers/app.js'
import { monitorRedis } from './helpers/monitor.js'
import type { SessionOrigin } from '../types/index.js'

/** A session stored by a real HTTP request; its Cookie header, as a browser would send it. */
async function login (app: Awaited<ReturnType<typeof buildApp>>['app'], data: Record<string, unknown> = { user: 'ann' }): Promise<{ cookie: string, id: string }> {
  const res = await app.inject({ method: 'POST', url: '/write', payload: data })
  return { cookie: sessionCookie(res), id: res.json().id }
}

test('fromHeaders opens the session a Cookie header names: read, change, save', async (t) => {
  const { app, client, prefix } = await buildApp(t)
  const { cookie, id } = await login(app)
  const loaded = app.sessions.stats().loaded
  const session = await app.sessions.fromHeaders({ cookie: `theme=dark; ${cookie}` })
  t.equal(session.id, id)
  t.equal(session.isNew, false)
  t.equal(session.get('user'), 'ann')
  t.equal(app.sessions.stats().loaded, loaded + 1)
  session.set('room', 'lobby')
  session.increment('n')
  await session.save()
  t.equal(session.isModified(), false)
  t.equal(session.setCookieHeader(), undefined, 'the client already holds the right cookie')
  const read = await app.inject({ url: '/read', headers: { cookie } })
  t.same(read.json().data, { user: 'ann', room: 'lobby', n: 1 })
  t.equal(JSON.parse(await client.get(sessionKey(prefix, id)) as string).v, 2)
})

test('a bad or missing cookie gives a fresh session, and a forged one costs no Redis command', async (t) => {
  const { app, client, prefix } = await buildApp(t)
  const monitor = await monitorRedis(t, await sharedRedisUrl())
  const { id } = await login(app)
  const forged = `sid=${new Signer('another-secret-0123456789-abcdefghijk').sign(id)}`
  const malformed = `sid=${new Signer(SECRET).sign('not*an*id-but-long-enough-0123')}`
  const cases: Array<[string, Record<string, string | string[] | undefined>]> = [
    ['no headers', {}],
    ['no session cookie', { cookie: 'theme=dark' }],
    ['forged signature', { cookie: forged }],
    ['unsigned id', { cookie: `sid=${id}` }],
    ['malformed id', { cookie: malformed }],
    ['oversized', { cookie: `sid=${'a'.repeat(8192)}` }]
  ]
  await monitor.take()
  const rejected = app.sessions.stats().rejectedCookies
  for (const [name, headers] of cases) {
    const session = await app.sessions.fromHeaders(headers)
    t.equal(session.isNew, true, name)
    t.same(session.toJSON(), {}, name)
    t.not(session.id, id, name)
  }
  t.same(await monitor.takeFrom(client), [], 'no command reached Redis')
  t.equal(app.sessions.stats().rejectedCookies, rejected + 4, 'forged, unsigned, malformed and oversized are counted')

  // correctly signed, but Redis does not hold it: a fresh session with a new id, never the client's
  const stale = new Signer(SECRET).sign('S'.repeat(43))
  const missing = await app.sessions.fromHeaders({ cookie: `sid=${stale}` })
  t.equal(missing.isNew, true)
  t.not(missing.id, 'S'.repeat(43))
  missing.set('a', 1)
  await missing.save()
  t.equal(await client.exists(sessionKey(prefix, 'S'.repeat(43))), 0, 'no key under the client\'s id')
  t.equal(await client.exists(sessionKey(prefix, missing.id)), 1)
})

test('a fresh session outside HTTP is stored by save(), and setCookieHeader() gives its cookie', async (t) => {
  const { app, client, prefix } = await buildApp(t, { session: { cookie: { maxAge: 600 } } })
  const session = await app.sessions.fromHeaders({})
  session.set('user', 'bob')
  t.equal(session.setCookieHeader(), undefined, 'nothing to send before it is stored')
  await session.save()
  t.equal(session.isNew, false)
  t.equal(await client.exists(sessionKey(prefix, session.id)), 1)
  const header = session.setCookieHeader() as string
  t.match(header, /^sid=[^;]+; Max-Age=600; Path=\/; HttpOnly; SameSite=Lax$/)
  t.notMatch(header, /Secure/, 'plain HTTP by default, with secure: auto')
  const cookie = header.split(';')[0]
  t.equal(cookie, `sid=${new Signer(SECRET).sign(session.id)}`)
  t.same((await app.inject({ url: '/read', headers: { cookie } })).json().data, { user: 'bob' })

  const overTls = await app.sessions.fromHeaders({}, { protocol: 'https' })
  overTls.set('a', 1)
  await overTls.save()
  t.match(overTls.setCookieHeader(), /; Secure; SameSite=Lax$/)
})

test('setCookieHeader() after destroy, regenerate, and for a cookie signed by an older secret', async (t) => {
  const { app, client, prefix } = await buildApp(t, { session: { secret: [SECRET, OLD_SECRET] } })
  const { id } = await login(app)

  const older = await app.sessions.fromHeaders({ cookie: `sid=${new Signer(OLD_SECRET).sign(id)}` })
  t.equal(older.get('user'), 'ann')
  t.equal(older.setCookieHeader()?.split(';')[0], `sid=${new Signer(SECRET).sign(id)}`, 're-issued, signed by the newest secret')

  const renewed = `sid=${new Signer(SECRET).sign(id)}`
  const session = await app.sessions.fromHeaders({ cookie: renewed })
  await session.regenerate(['user'])
  await session.save()
  t.not(session.id, id)
  t.equal(await client.exists(sessionKey(prefix, id)), 0)
  t.equal(session.setCookieHeader()?.split(';')[0], `sid=${new Signer(SECRET).sign(session.id)}`)

  const again = await app.sessions.fromHeaders({ cookie: `sid=${new Signer(SECRET).sign(session.id)}` })
  await again.destroy()
  t.equal(await client.exists(sessionKey(prefix, session.id)), 0)
  t.equal(again.setCookieHeader(), 'sid=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax')
  t.equal(again.isNew, true, 'a fresh session afterwards')
})

test('saves from fromHeaders sessions and from requests on one session lose no increment', async (t) => {
  const { app, client, prefix } = await buildApp(t)
  const { cookie, id } = await login(app, { n: 0 })
  const outside = async (): Promise<void> => {
    const session = await app.sessions.fromHeaders({ cookie })
    session.increment('n')
    await session.save()
  }
  const inside = async (): Promise<void> => {
    const res = await app.inject({ method: 'POST', url: '/increment', headers: { cookie } })
    if (res.statusCode !== 200) throw new Error(`increment answered ${res.statusCode}`)
  }
  const all: Array<Promise<void>> = []
  for (let i = 0; i < 50; i++) all.push(i % 2 === 0 ? outside() : inside())
  await Promise.all(all)
  t.equal(JSON.parse(await client.get(sessionKey(prefix, id)) as string).d.n, 50)

  // and a second app instance (another process, say) writing the same session meanwhile
  const other = await buildApp(t, { session: { prefix } })
  const both: Array<Promise<void>> = []
  for (let i = 0; i < 40; i++) {
    const target = i % 2 === 0 ? app : other.app
    both.push(target.sessions.fromHeaders({ cookie }).then(async (session) => {
      session.increment('n')
      await session.save()
    }))
  }
  await Promise.all(both)
  t.equal(JSON.parse(await client.get(sessionKey(prefix, id)) as string).d.n, 90)
})

test('a WebSocket-style upgrade on the app\'s own server: the session of the handshake, and a new one\'s cookie in the 101', async (t) => {
  const { app } = await buildApp(t, { session: { trackClient: true, userKey: 'user' } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  app.server.on('upgrade', function upgrade (req: http.IncomingMessage, socket: Socket) {
    app.sessions.fromHeaders(req.headers, { ip: req.socket.remoteAddress }).then(async (session) => {
      const visits = session.increment('visits')
      if (session.isNew) session.set('user', 'guest')
      await session.save()
      const setCookie = session.setCookieHeader()
      socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n' +
        (setCookie === undefined ? '' : `Set-Cookie: ${setCookie}\r\n`) + '\r\n' + JSON.stringify({ visits, user: session.get('user') }))
    }, (err: Error) => { socket.destroy(err) })
  })

  function handshake (cookie?: string): Promise<{ setCookie: string[] | undefined, body: { visits: number, user: string } }> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { connection: 'Upgrade', upgrade: 'test', 'user-agent': 'ws-client/1' }
      if (cookie !== undefined) headers.cookie = cookie
      const req = http.request({ port, host: '127.0.0.1', headers })
      req.on('upgrade', (res, socket, head) => {
        const chunks: Buffer[] = [head]
        socket.on('data', (chunk: Buffer) => chunks.push(chunk))
        socket.on('end', () => { resolve({ setCookie: res.headers['set-cookie'], body: JSON.parse(Buffer.concat(chunks).toString()) }) })
      })
      req.on('error', reject)
      req.end()
    })
  }

  const first = await handshake()
  t.same(first.body, { visits: 1, user: 'guest' })
  t.equal(first.setCookie?.length, 1, 'a new session sends its cookie with the 101')
  const cookie = (first.setCookie as string[])[0].split(';')[0]
  const second = await handshake(cookie)
  t.same(second.body, { visits: 2, user: 'guest' })
  t.equal(second.setCookie, undefined)
  // the same session over plain HTTP, and the origin's ip and user agent kept by trackClient
  t.same((await app.inject({ url: '/read', headers: { cookie } })).json().data, { visits: 2, user: 'guest' })
  const [info] = await app.sessions.list('guest')
  t.equal(info.ip, '127.0.0.1')
  t.equal(info.userAgent, 'ws-client/1')
})

test('idGenerator gets the origin of a fromHeaders session; log option and bad input', async (t) => {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, callback) { lines.push(String(chunk)); callback() } })
  const origins: SessionOrigin[] = []
  const { app } = await buildApp(t, {
    fastify: { logger: { level: 'debug', stream } },
    session: {
      idGenerator (origin) {
        origins.push(origin as SessionOrigin)
        return 'generated-'.padEnd(30, 'x') + String(origins.length)
      }
    }
  })
  const session = await app.sessions.fromHeaders({ 'user-agent': 'agent' }, { ip: '10.0.0.1', protocol: 'https' })
  t.equal(session.id, 'generated-xxxxxxxxxxxxxxxxxxxx1')
  t.same(origins[0].headers, { 'user-agent': 'agent' })
  t.equal(origins[0].ip, '10.0.0.1')
  t.equal(origins[0].protocol, 'https')
  t.equal(origins[0].log, app.log, 'the app\'s logger by default')

  const log = app.log.child({ channel: 'ws' })
  await app.sessions.fromHeaders({ cookie: 'sid=forged.value' }, { log })
  const rejected = lines.map(line => JSON.parse(line)).filter(entry => entry.msg === 'fastify-session-redis: rejected a session cookie')
  t.equal(rejected.length, 1)
  t.equal(rejected[0].channel, 'ws', 'logged through the given logger')

  const arrayCookie = await app.sessions.fromHeaders({ cookie: ['sid=x'] as unknown as string })
  t.equal(arrayCookie.isNew, true, 'a Cookie header that is not a string names no session')

  const bad: Array<[string, () => Promise<unknown>]> = [
    ['headers null', () => app.sessions.fromHeaders(null as never)],
    ['headers a string', () => app.sessions.fromHeaders('sid=x' as never)],
    ['options null', () => app.sessions.fromHeaders({}, null as never)],
    ['ip a number', () => app.sessions.fromHeaders({}, { ip: 1 as never })],
    ['protocol ws', () => app.sessions.fromHeaders({}, { protocol: 'ws' as never })]
  ]
  for (const [name, call] of bad) await t.rejects(call(), { code: 'FST_REDIS_SESSION_INVALID_VALUE' }, name)
})

test('fromHeaders rejects with a 503 error when Redis does not answer', async (t) => {
  const client = await connect(t)
  const { app } = await buildApp(t, { client, session: { timeout: 100 } })
  const { cookie } = await login(app)
  client.disconnect()
  await t.rejects(app.sessions.fromHeaders({ cookie }), { code: 'FST_REDIS_SESSION_STORE_UNAVAILABLE' })
})
