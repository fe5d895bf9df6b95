import { test } from 'tap'
import { buildApp, sessionCookie, sessionKey } from './helpers/app.js'

test('a session set on one request is read on the next', async (t) => {
  const { app, client, prefix } = await buildApp(t)
  const first = await app.inject({ method: 'POST', url: '/write', payload: { user: { id: 42 } } })
  t.equal(first.statusCode, 200)
  const cookie = sessionCookie(first)
  const second = await app.inject({ url: '/read', headers: { cookie } })
  t.same(second.json().data, { user: { id: 42 } })
  t.equal(second.headers['set-cookie'], undefined)
  const stored = await client.get(sessionKey(prefix, first.json().id))
  t.ok(stored)
  t.match(stored, /^\{"v":1,"a":\d+,"t":0,"c":\d+,"d":\{"user":\{"id":42\}\}\}$/)
})
