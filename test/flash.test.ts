import { test, type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildApp, connect, sessionCookie, keysUnder, type TestApp } from './helpers/app.js'
import { Gate } from './helpers/gate.js'

function flashApp (t: Test): Promise<TestApp> {
  return buildApp(t, {
    routes: (app) => {
      app.post('/flash', async (req) => {
        const { type, message } = req.body as { type: string, message: string | string[] }
        req.session.flash(type, message)
        return 'ok'
      })
      app.get('/flash/:type', async (req) => req.session.flash((req.params as { type: string }).type))
      app.get('/flash', async (req) => req.session.flash())
      app.post('/flash-bad', async (req) => { req.session.flash('info', [1] as unknown as string[]) })
      app.post('/flash-bad-type', async (req) => { req.session.flash('') })
    }
  })
}

test('a flash message lives until it is read once', async (t) => {
  const { app } = await flashApp(t)
  const first = await app.inject({ method: 'POST', url: '/flash', payload: { type: 'info', message: 'Welcome' } })
  const cookie = sessionCookie(first)
  await app.inject({ method: 'POST', url: '/flash', headers: { cookie }, payload: { type: 'info', message: ['a', 'b'] } })
  await app.inject({ method: 'POST', url: '/flash', headers: { cookie }, payload: { type: 'error', message: 'Oops' } })
  const untouched = await app.inject({ url: '/read', headers: { cookie } })
  t.same(untouched.json().data, {}, 'flash messages are not part of the data')
  const info = await app.inject({ url: '/flash/info', headers: { cookie } })
  t.same(info.json(), ['Welcome', 'a', 'b'])
  const again = await app.inject({ url: '/flash/info', headers: { cookie } })
  t.same(again.json(), [])
  const all = await app.inject({ url: '/flash', headers: { cookie } })
  t.same(all.json(), { error: ['Oops'] })
  const none = await app.inject({ url: '/flash', headers: { cookie } })
  t.same(none.json(), {})
})

test('flash messages must be strings and types non-empty', async (t) => {
  const { app } = await flashApp(t)
  const bad = await app.inject({ method: 'POST', url: '/flash-bad' })
  t.equal(bad.json().code, 'FST_REDIS_SESSION_INVALID_VALUE')
  const badType = await app.inject({ method: 'POST', url: '/flash-bad-type' })
  t.equal(badType.json().code, 'FST_REDIS_SESSION_INVALID_KEY')
})

test('reading flash messages of a new session writes nothing', async (t) => {
  const { app, client, prefix } = await flashApp(t)
  const res = await app.inject({ url: '/flash' })
  t.same(res.json(), {})
  const typed = await app.inject({ url: '/flash/info' })
  t.same(typed.json(), [])
  t.same(await keysUnder(client, prefix), [])
})

test('two instances reading the same flash at once: each removes only what it read, nothing fails', async (t) => {
  const first = await flashApp(t)
  const gate = new Gate()
  // both requests have loaded and read the flash before either saves
  gate.reached(2).then(() => { gate.open() }, t.threw)
  const routes = (app: FastifyInstance): void => {
    app.get('/take-together', async (req) => {
      const taken = req.session.flash('info')
      await gate.hold()
      return taken
    })
  }
  // separate connections, so each instance saves on its own and the second save replays onto the first
  const a = await buildApp(t, { client: first.client, session: { prefix: first.prefix }, routes })
  const b = await buildApp(t, { client: await connect(t), session: { prefix: first.prefix }, routes })
  const created = await first.app.inject({ method: 'POST', url: '/flash', payload: { type: 'info', message: 'once' } })
  const cookie = sessionCookie(created)
  const [ra, rb] = await Promise.all([
    a.app.inject({ url: '/take-together', headers: { cookie } }),
    b.app.inject({ url: '/take-together', headers: { cookie } })
  ])
  t.same([ra.statusCode, rb.statusCode], [200, 200])
  t.same([ra.json(), rb.json()], [['once'], ['once']], 'reads are not isolated: both saw it')
  const after = await first.app.inject({ url: '/flash', headers: { cookie } })
  t.same(after.json(), {}, 'and it is gone afterwards')
})
