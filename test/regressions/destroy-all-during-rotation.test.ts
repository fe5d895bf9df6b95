// destroyAll(user) that read the user's index just before a rotation moved one of its sessions,
// and reached that session's old key only once it held the alias, deleted nothing there: the
// successor, which joined the index after the read, stayed logged in.
import { test } from 'tap'
import { buildApp, connect, keysUnder, sessionKey } from '../helpers/app.js'
import { Browser } from '../helpers/scale.js'
import { waitFor } from '../helpers/redis-server.js'

const idOf = (cookie: string): string => decodeURIComponent(cookie.slice('sid='.length)).split('.')[0]

test('destroyAll across a rotation of one of the user\'s sessions ends the successor', async (t) => {
  const session = { userKey: 'uid', rotateEvery: 60 }
  const { app: a, client, prefix } = await buildApp(t, { session })
  // the admin side: its own connection, which the test holds up between destroyAll's steps
  const adminClient = await connect(t)
  const { app: b } = await buildApp(t, { client: adminClient, session: { ...session, prefix } })
  await adminClient.ping()
  const browser = new Browser()
  await browser.send(a, 'POST', '/write', { uid: 42 })
  const oldCookie = browser.cookie!
  const oldId = idOf(oldCookie)
  const key = sessionKey(prefix, oldId)
  const doc = JSON.parse(await client.get(key) as string)
  await client.set(key, JSON.stringify({ ...doc, c: doc.c - 61_000 }), 'KEEPTTL')

  // destroyAll reads the index; its next command waits behind a BLPOP on the same connection
  const held = `${prefix}held`
  const destroying = b.sessions.destroyAll(42)
  const blocked = adminClient.blpop(held, 0)
  await waitFor('the admin connection to block', async () => (await client.client('LIST') as string).includes('cmd=blpop'))
  const rotated = await browser.send(a, 'GET', '/read')
  t.not(idOf(browser.cookie!), oldId, 'rotated meanwhile')
  t.equal(rotated.json().data.uid, 42)
  await client.lpush(held, 'go')
  await blocked

  t.equal(await destroying, 1, 'the successor was deleted')
  const after = await browser.send(a, 'GET', '/read')
  t.equal(after.json().isNew, true, 'the rotated cookie is anonymous')
  t.same((await keysUnder(client, prefix)).filter(k => !k.startsWith(`${prefix}user:`)), [key], 'no session left, only the alias until its grace ends')
  t.equal((await a.inject({ url: '/read', headers: { cookie: oldCookie } })).json().isNew, true, 'which leads nowhere')
  t.same(await b.sessions.list(42), [])
})
