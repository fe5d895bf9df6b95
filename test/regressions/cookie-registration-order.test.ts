import { test, type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyCookie from '@fastify/cookie'
import redisSession from '../../lib/index.js'
import { OLD_SECRET, SECRET, connect, sessionCookie, setCookies, uniquePrefix } from '../helpers/app.js'

// @fastify/cookie registered after the plugin used to fail the boot with Fastify's bare
// FST_ERR_DEC_ALREADY_PRESENT: the plugin had decorated the app with a @fastify/cookie of its own.

function routes (app: FastifyInstance): void {
  app.post('/login', async (req, reply) => {
    req.session.set('user', 'ada')
    reply.setCookie('pref', 'dark', { signed: true, path: '/' })
    return 'ok'
  })
  app.get('/whoami', async (req) => ({ user: req.session.get('user') ?? null, pref: req.unsignCookie(req.cookies.pref ?? '').value }))
  app.post('/logout', async (req) => {
    await req.session.destroy()
    return 'bye'
  })
}

async function appWith (t: Test, order: 'cookie-first' | 'plugin-first'): Promise<FastifyInstance> {
  const client = await connect(t)
  const app = Fastify()
  t.teardown(() => app.close())
  const plugin = async (): Promise<void> => { await app.register(redisSession, { client, secret: SECRET, prefix: uniquePrefix() }) }
  const cookie = async (): Promise<void> => { await app.register(fastifyCookie, { secret: OLD_SECRET }) }
  if (order === 'cookie-first') {
    await cookie()
    await plugin()
  } else {
    await plugin()
    await cookie()
  }
  routes(app)
  await app.ready()
  return app
}

for (const order of ['plugin-first', 'cookie-first'] as const) {
  test(`@fastify/cookie and the plugin work together registered ${order}`, async (t) => {
    const app = await appWith(t, order)
    const login = await app.inject({ method: 'POST', url: '/login' })
    t.equal(login.statusCode, 200)
    const names = login.cookies.map(c => c.name).sort()
    t.same(names, ['pref', 'sid'], 'the app\'s cookie and the session cookie, each in its own Set-Cookie header')
    const pref = login.cookies.find(c => c.name === 'pref')
    const cookie = `${sessionCookie(login)}; pref=${String(pref?.value)}`
    const me = await app.inject({ url: '/whoami', headers: { cookie } })
    t.same(me.json(), { user: 'ada', pref: 'dark' }, 'the session loads, and the app\'s cookie is signed with the app\'s own secret')
    const logout = await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })
    t.match(setCookies(logout).find(c => c.startsWith('sid=')), /Max-Age=0/, 'logging out clears the session cookie')
  })
}

test('without @fastify/cookie the plugin still reads and writes its cookie, and decorates nothing of it on the app', async (t) => {
  const client = await connect(t)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(redisSession, { client, secret: SECRET, prefix: uniquePrefix() })
  app.post('/login', async (req) => {
    req.session.set('user', 'ada')
    return 'ok'
  })
  app.get('/whoami', async (req) => ({ user: req.session.get('user') ?? null }))
  await app.ready()
  t.notOk(app.hasReplyDecorator('setCookie'), 'reply.setCookie is the app\'s to add')
  t.notOk(app.hasDecorator('parseCookie'))
  const login = await app.inject({ method: 'POST', url: '/login' })
  const me = await app.inject({ url: '/whoami', headers: { cookie: sessionCookie(login) } })
  t.same(me.json(), { user: 'ada' })
})
