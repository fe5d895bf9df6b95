import { test } from 'tap'
import { randomBytes } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import { SECRET, buildApp, sessionCookie } from '../helpers/app.js'

// `idGenerator(request)` after `regenerate()` used to see the session already emptied: the new id
// was made lazily, once the old data was gone. @fastify/session calls it while the data is there.

interface Visitor { session?: { get?: (key: string) => unknown } | null }

/** Marks the ids of returning visitors: 'r', else 'n', then 32 random characters. */
function visitorIds (request?: FastifyRequest | object): string {
  const session = (request as Visitor | undefined)?.session
  const returning = typeof session?.get === 'function' && session.get('returning') === true
  return (returning ? 'r' : 'n') + randomBytes(24).toString('base64url')
}

function routes (app: FastifyInstance): void {
  app.post('/visit', async (req) => {
    req.session.set('returning', true)
    return 'ok'
  })
  app.post('/login', async (req) => {
    await req.session.regenerate()
    req.session.set('user', 'ada')
    return { id: req.session.sessionId }
  })
}

test('control: @fastify/session calls idGenerator on regenerate while the old data is still there', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyCookie)
  await app.register(fastifySession, { secret: SECRET, cookieName: 'sid', cookie: { secure: false }, idGenerator: visitorIds })
  routes(app)
  const visit = await app.inject({ method: 'POST', url: '/visit' })
  const login = await app.inject({ method: 'POST', url: '/login', headers: { cookie: sessionCookie(visit) } })
  t.match(login.json().id, /^r/, 'the returning visitor\'s flag was seen')
})

test('idGenerator on regenerate sees the session as it was before regenerate', async (t) => {
  const { app } = await buildApp(t, { session: { idGenerator: visitorIds }, routes })
  const visit = await app.inject({ method: 'POST', url: '/visit' })
  const login = await app.inject({ method: 'POST', url: '/login', headers: { cookie: sessionCookie(visit) } })
  t.match(login.json().id, /^r/, 'the returning visitor\'s flag was seen')
  const me = await app.inject({ url: '/read', headers: { cookie: sessionCookie(login) } })
  t.same(me.json().data, { user: 'ada' }, 'the regenerated session holds only what was set after regenerate')
  t.equal(me.json().id, login.json().id, 'under the id the generator made')
})

test('an unusable id from idGenerator on regenerate: the coded 500, and the old session is intact', async (t) => {
  let bad = false
  const { app } = await buildApp(t, {
    session: { idGenerator: (request) => bad ? 'nope' : visitorIds(request) },
    routes
  })
  const visit = await app.inject({ method: 'POST', url: '/visit' })
  bad = true
  const login = await app.inject({ method: 'POST', url: '/login', headers: { cookie: sessionCookie(visit) } })
  t.equal(login.statusCode, 500)
  t.equal(login.json().code, 'FST_REDIS_SESSION_BAD_ID')
  const me = await app.inject({ url: '/read', headers: { cookie: sessionCookie(visit) } })
  t.same(me.json().data, { returning: true }, 'nothing was taken from Redis')
})
