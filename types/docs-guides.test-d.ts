// The snippets of the guides in docs/, as the pages show them (test/docs.test.ts checks that they
// stay the same). Each sits in a block of its own where it declares names another one declares too.
import type { IncomingHttpHeaders } from 'node:http'
import diagnostics from 'node:diagnostics_channel'
import Fastify from 'fastify'
import { Cluster, Redis } from 'ioredis'
import { expectType } from 'tsd'
import redisSession, { channels, type SessionInfo, type SessionSaveEvent } from 'fastify-session-redis'

const app = Fastify()
const client = new Redis()
const secret = 'a-secret-of-at-least-32-characters!'

// docs/rotating-ids.md
{
  const app = Fastify()
  await app.register(redisSession, { client, secret, rotateEvery: 15 * 60, rotateGrace: 30 })
}

// docs/scaling-out.md: Redis Cluster
{
  const app = Fastify()
  const client = new Cluster([
    { host: '10.0.0.1', port: 6379 },
    { host: '10.0.0.2', port: 6379 },
    { host: '10.0.0.3', port: 6379 }
  ])
  await app.register(redisSession, { client, secret: process.env.SESSION_SECRET })
}

// docs/scaling-out.md: Redis Sentinel
{
  const app = Fastify()
  const client = new Redis({
    sentinels: [{ host: '10.0.0.1', port: 26379 }, { host: '10.0.0.2', port: 26379 }],
    name: 'mymaster',
    failoverDetector: true // follow a failover as soon as the sentinels announce it
  })
  await app.register(redisSession, { client, secret: process.env.SESSION_SECRET })
}

// docs/managing-sessions.md: log out everywhere, list devices
{
  const app = Fastify()
  await app.register(redisSession, {
    client: new Redis(),
    secret: process.env.SESSION_SECRET,
    userKey: 'userId', // sessions with a userId join that user's index
    trackClient: true // and keep ip and user agent for the device list
  })

  app.post('/login', async (req) => {
    await req.session.regenerate()
    req.session.set('userId', 42)
    return 'ok'
  })
  app.get('/account/devices', async (req) => {
    const sessions = await app.sessions.list(req.session.get('userId') as number)
    const here = app.sessions.idHint(req.session.id)
    return sessions.map(s => ({ ...s, current: s.idHint === here }))
  })
  app.post('/account/logout-everywhere', async (req) => {
    const count = await app.sessions.destroyAll(req.session.get('userId') as number, { except: req.session.id })
    return { loggedOut: count }
  })
  expectType<Promise<SessionInfo[]>>(app.sessions.list(42))
}

// docs/managing-sessions.md: sessions in tests
{
  const { id, headers } = await app.sessions.create({ user: { id: 1 } }, { rememberMe: true })
  const res = await app.inject({ url: '/me', headers }) // or { headers: { cookie } }
  await app.sessions.destroy(id)
  expectType<number>(res.statusCode)
}

// docs/outside-http.md: a WebSocket upgrade and a socket.io middleware
declare const io: {
  use: (middleware: (socket: { handshake: { headers: IncomingHttpHeaders, address: string }, data: Record<string, unknown> },
    next: (err?: Error) => void) => void) => void
}
app.server.on('upgrade', async (req, socket) => {
  const session = await app.sessions.fromHeaders(req.headers, { ip: req.socket.remoteAddress })
  if (session.get('user') === undefined) return socket.destroy()
  session.increment('sockets')
  await session.save()
  // … hand the socket to your WebSocket library
})

// socket.io
io.use(async (socket, next) => {
  const session = await app.sessions.fromHeaders(socket.handshake.headers, { ip: socket.handshake.address })
  socket.data.user = session.get('user')
  next()
})

// docs/events-and-metrics.md
diagnostics.subscribe(channels.save, (message) => {
  const { outcome, code, durationMs } = message as SessionSaveEvent
  if (outcome === 'failed') app.log.warn({ code, durationMs }, 'session save failed')
})
