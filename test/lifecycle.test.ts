import { test } from 'tap'
import type { FastifyRequest } from 'fastify'
import { buildApp, sessionCookie, setCookies, keysUnder, sessionKey } from './helpers/app.js'
import { logoutRoute } from './helpers/routes.js'
import { Gate } from './helpers/gate.js'

test('regenerate(keep) gives a new id with the kept data and deletes the old key', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    routes: (app) => {
      app.post('/login', async (req) => {
        const before = req.session.id
        await req.session.regenerate(['cart'])
        req.session.set('user', { id: 42 })
        return { before, after: req.session.id, isNew: req.session.isNew, modified: req.session.isModified() }
      })
    }
  })
  const first = await app.inject({ method: 'POST', url: '/write', payload: { cart: [1, 2] } })
  const oldId = first.json().id
  const login = await app.inject({ method: 'POST', url: '/login', headers: { cookie: sessionCookie(first) } })
  const body = login.json()
  t.equal(body.before, oldId)
  t.not(body.after, oldId)
  t.equal(body.isNew, true)
  t.equal(body.modified, true)
  t.equal(await client.exists(sessionKey(prefix, oldId)), 0, 'old key deleted')
  const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(login) } })
  t.same(read.json().data, { cart: [1, 2], user: { id: 42 } })
  t.equal(read.json().id, body.after)
  const stale = await app.inject({ url: '/read', headers: { cookie: sessionCookie(first) } })
  t.same(stale.json().data, {}, 'the old cookie gets a fresh session')
  t.not(stale.json().id, oldId)
})

test('regenerate(keep) on a brand-new session just issues a new id', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    routes: (app) => {
      app.post('/login', async (req) => {
        req.session.set('a', 1)
        await req.session.regenerate(['a'])
        return { id: req.session.id }
      })
    }
  })
  const res = await app.inject({ method: 'POST', url: '/login' })
  t.same(await keysUnder(client, prefix), [sessionKey(prefix, res.json().id)])
})

test('regenerate(keep) of a session that vanished meanwhile fails with GONE instead of reviving it', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    routes: (app) => {
      app.post('/login', async (req) => {
        await client.del(sessionKey(prefix, req.session.id))
        req.session.set('b', 2)
        await req.session.regenerate(['b'])
        return { id: req.session.id }
      })
    }
  })
  const first = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const login = await app.inject({ method: 'POST', url: '/login', headers: { cookie: sessionCookie(first) } })
  t.equal(login.statusCode, 409)
  t.equal(login.json().code, 'FST_REDIS_SESSION_GONE')
  t.same(await keysUnder(client, prefix), [], 'nothing stored under any id')
})

test('regenerate() resets the absolute deadline', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    session: { absoluteTtl: 3600 },
    routes: (app) => {
      app.post('/login', async (req) => {
        await req.session.regenerate(['a'])
        return { id: req.session.id, createdAt: req.session.createdAt }
      })
    }
  })
  const first = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const oldDoc = JSON.parse(await client.get(sessionKey(prefix, first.json().id)) as string)
  await client.set(sessionKey(prefix, first.json().id), JSON.stringify({ ...oldDoc, c: oldDoc.c - 1000_000, a: oldDoc.a - 1000_000 }), 'EX', 60)
  const login = await app.inject({ method: 'POST', url: '/login', headers: { cookie: sessionCookie(first) } })
  const doc = JSON.parse(await client.get(sessionKey(prefix, login.json().id)) as string)
  t.equal(doc.c, login.json().createdAt)
  t.equal(doc.a - doc.c, 3600_000)
})

test('destroy() deletes the key, clears the cookie and leaves a fresh session', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    session: { cookie: { domain: 'example.com', path: '/' } },
    routes: (app) => {
      app.post('/logout', async (req) => {
        await req.session.destroy()
        return { data: req.session.toJSON(), isNew: req.session.isNew }
      })
      app.post('/logout-flash', async (req) => {
        await req.session.destroy()
        req.session.flash('info', 'bye')
        return 'ok'
      })
      app.get('/flash', async (req) => req.session.flash('info'))
    }
  })
  const first = await app.inject({ method: 'POST', url: '/write', payload: { user: 'ann' } })
  const logout = await app.inject({ method: 'POST', url: '/logout', headers: { cookie: sessionCookie(first) } })
  t.same(logout.json(), { data: {}, isNew: true })
  t.equal(await client.exists(sessionKey(prefix, first.json().id)), 0)
  const [clearing] = setCookies(logout)
  t.match(clearing, /^sid=;/)
  t.match(clearing, /Max-Age=0/)
  t.match(clearing, /Domain=example\.com/)
  t.match(clearing, /Path=\//)
  t.same(await keysUnder(client, prefix), [], 'nothing written back')

  const again = await app.inject({ method: 'POST', url: '/write', payload: { user: 'bob' } })
  const withFlash = await app.inject({ method: 'POST', url: '/logout-flash', headers: { cookie: sessionCookie(again) } })
  const next = sessionCookie(withFlash)
  t.not(next, sessionCookie(again), 'a new id carries the flash')
  const flash = await app.inject({ url: '/flash', headers: { cookie: next } })
  t.same(flash.json(), ['bye'])
})

test('destroy() of a session never stored sends no cookie at all', async (t) => {
  const { app } = await buildApp(t, {
    routes: (app) => {
      logoutRoute(app)
    }
  })
  const res = await app.inject({ method: 'POST', url: '/logout' })
  t.same(setCookies(res), [])
})

test('reload() drops unsaved changes and reads what is stored', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    routes: (app) => {
      app.post('/reload', async (req) => {
        req.session.set('local', true)
        await client.set(sessionKey(prefix, req.session.id), (await client.get(sessionKey(prefix, req.session.id)) as string).replace('"x":1', '"x":2'), 'KEEPTTL')
        await req.session.reload()
        return { data: req.session.toJSON(), modified: req.session.isModified() }
      })
      app.post('/reload-new', async (req) => {
        req.session.set('local', true)
        await req.session.reload()
        return { data: req.session.toJSON() }
      })
      app.post('/reload-gone', async (req) => {
        await client.del(sessionKey(prefix, req.session.id))
        await req.session.reload()
        return { isNew: req.session.isNew }
      })
    }
  })
  const first = await app.inject({ method: 'POST', url: '/write', payload: { x: 1 } })
  const cookie = sessionCookie(first)
  const reloaded = await app.inject({ method: 'POST', url: '/reload', headers: { cookie } })
  t.same(reloaded.json(), { data: { x: 2 }, modified: false })
  const fresh = await app.inject({ method: 'POST', url: '/reload-new' })
  t.same(fresh.json(), { data: {} })
  t.same(setCookies(fresh), [])
  const gone = await app.inject({ method: 'POST', url: '/reload-gone', headers: { cookie } })
  t.same(gone.json(), { isNew: true })
  t.same(setCookies(gone), [], 'no cookie until the fresh session is stored')
})

test('save() writes at once; later changes are saved at the end of the request', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    routes: (app) => {
      app.post('/save', async (req) => {
        req.session.set('a', 1)
        await req.session.save()
        const stored = await client.get(sessionKey(prefix, req.session.id))
        req.session.set('b', 2)
        return { stored, isNew: req.session.isNew, modified: req.session.isModified(), data: req.session.toJSON() }
      })
    }
  })
  const res = await app.inject({ method: 'POST', url: '/save' })
  const body = res.json()
  t.match(body.stored, /"d":\{"a":1\}/)
  t.equal(body.isNew, false)
  t.equal(body.modified, true)
  t.same(body.data, { a: 1, b: 2 })
  const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(res) } })
  t.same(read.json().data, { a: 1, b: 2 })
})

test('save() keeps changes another request stored meanwhile in the session it goes on with', async (t) => {
  const gate = new Gate()
  const { app } = await buildApp(t, {
    routes: (app) => {
      app.post('/slow', async (req) => {
        req.session.set('slow', 1)
        // loaded before the fast write, saved after it
        await gate.hold()
        await req.session.save()
        return req.session.toJSON()
      })
    }
  })
  const first = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const cookie = sessionCookie(first)
  const slow = app.inject({ method: 'POST', url: '/slow', headers: { cookie } })
  await gate.reached(1)
  const fast = await app.inject({ method: 'POST', url: '/write', headers: { cookie }, payload: { fast: 1 } })
  t.equal(fast.statusCode, 200, 'the fast write is stored while the slow request waits')
  gate.open()
  t.same((await slow).json(), { a: 1, slow: 1, fast: 1 })
})

test('get, has, delete, clear, toJSON and isModified', async (t) => {
  const { app } = await buildApp(t, {
    routes: (app) => {
      app.post('/ops', async (req) => {
        const s = req.session
        const out: Record<string, unknown> = {}
        out.unmodified = s.isModified()
        out.missing = s.get('nope')
        out.proto = s.get('constructor')
        out.hasProto = s.has('toString')
        s.delete('nope')
        s.clear()
        out.stillUnmodified = s.isModified()
        s.set('a', { deep: [1] })
        s.set('b', 'x')
        out.hasA = s.has('a')
        const copy = s.toJSON()
        ;(copy.a as { deep: number[] }).deep.push(2)
        out.afterCopy = s.get('a')
        s.delete('b')
        out.hasB = s.has('b')
        s.set('nothing', null)
        s.set('nested', { none: null, list: [null] })
        out.nulls = [s.get('nothing'), s.get('nested')]
        s.set('c', undefined)
        out.hasC = s.has('c')
        out.modified = s.isModified()
        return out
      })
      app.post('/clear', async (req) => { req.session.clear(); return req.session.toJSON() })
    }
  })
  const res = await app.inject({ method: 'POST', url: '/ops' })
  t.same(res.json(), {
    unmodified: false,
    stillUnmodified: false,
    hasProto: false,
    hasA: true,
    afterCopy: { deep: [1] },
    nulls: [null, { none: null, list: [null] }],
    hasB: false,
    hasC: false,
    modified: true
  })
  const cleared = await app.inject({ method: 'POST', url: '/clear', headers: { cookie: sessionCookie(res) } })
  t.same(cleared.json(), {})
  const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(res) } })
  t.same(read.json().data, {})
})

test('increment() counts from zero, takes a step and refuses non-numbers', async (t) => {
  const { app } = await buildApp(t, {
    routes: (app) => {
      app.post('/step', async (req) => ({ n: req.session.increment('n', 5), m: req.session.increment('m', -2) }))
      app.post('/bad', async (req) => {
        req.session.set('s', 'text')
        req.session.increment('s')
      })
      app.post('/overflow', async (req) => {
        req.session.set('big', Number.MAX_VALUE)
        req.session.increment('big', Number.MAX_VALUE)
      })
    }
  })
  const one = await app.inject({ method: 'POST', url: '/increment' })
  t.same(one.json(), { n: 1 })
  const step = await app.inject({ method: 'POST', url: '/step', headers: { cookie: sessionCookie(one) } })
  t.same(step.json(), { n: 6, m: -2 })
  const bad = await app.inject({ method: 'POST', url: '/bad' })
  t.equal(bad.json().code, 'FST_REDIS_SESSION_INVALID_VALUE')
  const overflow = await app.inject({ method: 'POST', url: '/overflow' })
  t.equal(overflow.json().code, 'FST_REDIS_SESSION_INVALID_VALUE')
})

/** The session a route reads, or the code of the error that reading it threw. */
function sessionOrCode (req: FastifyRequest): unknown {
  try {
    return req.session
  } catch (err) {
    return (err as { code: string }).code
  }
}

test('a route with config.session false neither loads nor sets a session', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    routes: (app) => {
      app.get('/static', { config: { session: false } }, async (req) => ({ session: sessionOrCode(req) }))
    }
  })
  const first = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  await client.del(sessionKey(prefix, first.json().id))
  const res = await app.inject({ url: '/static', headers: { cookie: sessionCookie(first) } })
  t.same(res.json(), { session: 'FST_REDIS_SESSION_NONE' })
  t.same(setCookies(res), [], 'no cookie, not even a clearing one')
  const bare = await app.inject({ url: '/static' })
  t.same(bare.json(), { session: 'FST_REDIS_SESSION_NONE' }, 'without a cookie too')
})

test('request.session is built once per request, on first use', async (t) => {
  const { app } = await buildApp(t, {
    routes: (app) => {
      app.get('/twice', async (req) => {
        const first = req.session
        first.set('n', 1)
        return { same: req.session === first, n: req.session.get('n') }
      })
    }
  })
  const res = await app.inject({ url: '/twice' })
  t.same(res.json(), { same: true, n: 1 })
  t.ok(sessionCookie(res), 'the change made through the first reference is saved')
})

test('a session cookie that cannot be written after the save gives an error response, not a hang', async (t) => {
  const { app } = await buildApp(t, {
    routes: (app) => {
      app.post('/odd-header', async (req, reply) => {
        // @fastify/cookie cannot add a cookie to a Set-Cookie header that is neither string nor array
        reply.header('set-cookie', 5)
        req.session.set('n', 1)
        return { ok: true }
      })
    }
  })
  const res = await app.inject({ method: 'POST', url: '/odd-header' })
  t.equal(res.statusCode, 500)
})

test('saveUninitialized leaves a route with config.session false alone', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    session: { saveUninitialized: true },
    routes: (app) => {
      app.get('/static', { config: { session: false } }, async (req) => ({ session: sessionOrCode(req) }))
    }
  })
  const res = await app.inject({ url: '/static' })
  t.same(res.json(), { session: 'FST_REDIS_SESSION_NONE' })
  t.same(setCookies(res), [])
  t.same(await keysUnder(client, prefix), [])
})

test('saveUninitialized stores an untouched new session and sends its cookie', async (t) => {
  const { app, client, prefix } = await buildApp(t, { session: { saveUninitialized: true } })
  const res = await app.inject({ url: '/untouched' })
  const keys = await keysUnder(client, prefix)
  t.equal(keys.length, 1)
  t.ok(sessionCookie(res))
})

test('without saveUninitialized an untouched new session costs nothing and sends no cookie', async (t) => {
  const { app, client, prefix } = await buildApp(t)
  const res = await app.inject({ url: '/untouched' })
  t.same(setCookies(res), [])
  t.same(await keysUnder(client, prefix), [])
})

test('id and sessionId agree; createdAt and expiresAt are epoch milliseconds', async (t) => {
  const { app } = await buildApp(t, {
    session: { ttl: 60, absoluteTtl: 3600 },
    routes: (app) => {
      app.post('/meta', async (req) => {
        const before = Date.now()
        req.session.set('x', 1)
        return { id: req.session.id, sessionId: req.session.sessionId, createdAt: req.session.createdAt, expiresAt: req.session.expiresAt, before }
      })
      app.get('/meta', async (req) => ({ createdAt: req.session.createdAt, expiresAt: req.session.expiresAt, now: Date.now() }))
    }
  })
  const res = await app.inject({ method: 'POST', url: '/meta' })
  const body = res.json()
  t.equal(body.id, body.sessionId)
  t.ok(body.createdAt <= body.before + 5 && body.createdAt > body.before - 5000)
  t.equal(body.expiresAt - body.createdAt, 60_000)
  const read = await app.inject({ url: '/meta', headers: { cookie: sessionCookie(res) } })
  t.equal(read.json().createdAt, body.createdAt)
  t.ok(read.json().expiresAt > read.json().now + 58_000 && read.json().expiresAt <= read.json().now + 60_000)
})

test('setTtl() is kept with the session and validated', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    session: { ttl: 600 },
    routes: (app) => {
      app.post('/short', async (req) => { req.session.setTtl(30); return { id: req.session.id } })
      app.post('/bad-ttl', async (req) => { req.session.setTtl(0) })
      app.post('/fraction-ttl', async (req) => { req.session.setTtl(1.5) })
    }
  })
  const res = await app.inject({ method: 'POST', url: '/short' })
  const key = sessionKey(prefix, res.json().id)
  const own = await client.ttl(key)
  t.ok(own >= 28 && own <= 30, `the session's own ttl: TTL ${own} s`)
  t.match(await client.get(key), /"t":30,/)
  await client.expire(key, 5)
  await app.inject({ url: '/read', headers: { cookie: sessionCookie(res) } })
  const ttl = await client.ttl(key)
  t.ok(ttl >= 28 && ttl <= 30, `a read refreshes to the session's own ttl, not the default: TTL ${ttl} s`)
  for (const url of ['/bad-ttl', '/fraction-ttl']) {
    const bad = await app.inject({ method: 'POST', url })
    t.equal(bad.json().code, 'FST_REDIS_SESSION_INVALID_VALUE')
  }
})
