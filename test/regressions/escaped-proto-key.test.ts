import { test } from 'tap'
import { randomBytes } from 'node:crypto'
import { sign } from '@fastify/cookie'
import { SECRET, buildApp, sessionKey } from '../helpers/app.js'

// JSON.parse turns "\u005f_proto__" into an own "__proto__" key; a plain text search for
// "__proto__" missed it, so the document was loaded and a copy of the data made with
// Object.assign took the attacker's object as its prototype.
test('a stored __proto__ key spelt with a \\u escape is refused like the plain one', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    routes (app) {
      app.get('/copy', async (req) => {
        const copy: Record<string, unknown> = Object.assign({}, req.session.toJSON())
        return { isNew: req.session.isNew, polluted: copy.polluted ?? null }
      })
    }
  })
  const id = randomBytes(32).toString('base64url')
  const now = Date.now()
  await client.set(sessionKey(prefix, id), `{"v":1,"a":${now + 3600_000},"t":0,"c":${now},"d":{"\\u005f_proto__":{"polluted":"yes"}}}`, 'EX', 600)
  const res = await app.inject({ url: '/copy', headers: { cookie: `sid=${encodeURIComponent(sign(id, SECRET))}` } })
  t.same(res.json(), { isNew: true, polluted: null })
  t.equal(await client.exists(sessionKey(prefix, id)), 0, 'the document is deleted')
})
