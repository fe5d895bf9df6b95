// The session API as code written for @fastify/session calls it: regenerate(keep), Node-style
// callbacks, property-style data, data() and options().
import { test } from 'tap'
import { buildApp, keysUnder, sessionCookie, setCookies, sessionKey } from './helpers/app.js'

test('regenerate(keep) keeps only the listed keys, under a new id; the old id is gone', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    routes: (app) => {
      app.post('/login', async (req) => {
        const before = req.session.id
        await req.session.regenerate(['cart', 'missing'])
        req.session.set('user', 'ann')
        return { before, after: req.session.id }
      })
    }
  })
  const first = await app.inject({ method: 'POST', url: '/write', payload: { cart: [1], csrf: 'secret' } })
  const login = await app.inject({ method: 'POST', url: '/login', headers: { cookie: sessionCookie(first) } })
  const { before, after } = login.json()
  t.not(after, before)
  t.equal(await client.exists(sessionKey(prefix, before)), 0, 'old key deleted')
  const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(login) } })
  t.same(read.json().data, { cart: [1], user: 'ann' }, 'csrf dropped, cart kept, user added')
})

test('a bare regenerate() keeps nothing; with nothing new the session is not stored and its cookie is cleared', async (t) => {
  const { app, prefix, client } = await buildApp(t, {
    routes: (app) => {
      app.post('/logout', async (req) => {
        req.session.set('passport', undefined)
        await req.session.regenerate()
        return { data: req.session.toJSON(), isNew: req.session.isNew, modified: req.session.isModified() }
      })
    }
  })
  const first = await app.inject({ method: 'POST', url: '/write', payload: { passport: { user: 1 }, cart: [2] } })
  first.headers.cookie = sessionCookie(first)
  await app.inject({ url: '/read', headers: { cookie: sessionCookie(first) } })
  const logout = await app.inject({ method: 'POST', url: '/logout', headers: { cookie: sessionCookie(first) } })
  t.same(logout.json(), { data: {}, isNew: true, modified: false })
  const [clearing] = setCookies(logout)
  t.match(clearing, /^sid=;/, 'the cookie is cleared')
  t.match(clearing, /Max-Age=0/)
  t.same(await keysUnder(client, prefix), [], 'nothing stored')
})

test('regenerate() of a session that ended meanwhile: an empty session when keeping nothing, GONE when keeping keys', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    routes: (app) => {
      app.post('/regenerate', async (req) => {
        await client.del(sessionKey(prefix, req.session.id))
        const keep = (req.body as { keep: string[] }).keep
        await req.session.regenerate(keep)
        return { data: req.session.toJSON() }
      })
    }
  })
  const first = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const bare = await app.inject({ method: 'POST', url: '/regenerate', payload: { keep: [] }, headers: { cookie: sessionCookie(first) } })
  t.equal(bare.statusCode, 200)
  t.same(bare.json().data, {})
  const second = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const keeping = await app.inject({ method: 'POST', url: '/regenerate', payload: { keep: ['a'] }, headers: { cookie: sessionCookie(second) } })
  t.equal(keeping.statusCode, 409)
  t.equal(keeping.json().code, 'FST_REDIS_SESSION_GONE')
  t.same(await keysUnder(client, prefix), [], 'nothing revived')
})

test('callback forms of regenerate, save, destroy and reload are called, with the error when there is one', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    routes: (app) => {
      app.post('/callbacks', (req, reply) => {
        const steps: string[] = []
        req.session.set('a', 1)
        req.session.set('b', 2)
        req.session.save((err) => {
          steps.push(`save:${err === undefined}`)
          req.session.set('a', 99)
          req.session.reload((err) => {
            steps.push(`reload:${err === undefined}:${String(req.session.get('a'))}`)
            req.session.regenerate(['b'], (err) => {
              steps.push(`regenerate(keep):${err === undefined}:${JSON.stringify(req.session.toJSON())}`)
              req.session.regenerate((err) => {
                steps.push(`regenerate:${err === undefined}:${JSON.stringify(req.session.toJSON())}`)
                req.session.set('c', 3)
                req.session.save(() => {
                  req.session.destroy((err) => {
                    steps.push(`destroy:${err === undefined}`)
                    reply.send(steps)
                  })
                })
              })
            })
          })
        })
      })
      app.post('/failing', (req, reply) => {
        client.del(sessionKey(prefix, req.session.id)).then(() => {
          req.session.regenerate(['a'], (err) => {
            reply.send({ code: (err as { code?: string } | undefined)?.code })
          })
        }, (err) => reply.send(err))
      })
    }
  })
  const res = await app.inject({ method: 'POST', url: '/callbacks' })
  t.same(res.json(), [
    'save:true',
    'reload:true:1',
    'regenerate(keep):true:{"b":2}',
    'regenerate:true:{}',
    'destroy:true'
  ])
  t.same(await keysUnder(client, prefix), [], 'destroyed at the end')
  const first = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const failing = await app.inject({ method: 'POST', url: '/failing', headers: { cookie: sessionCookie(first) } })
  t.same(failing.json(), { code: 'FST_REDIS_SESSION_GONE' }, 'the error reaches the callback')
})

test('a callback that throws is logged, and the request is not left hanging', async (t) => {
  const lines: string[] = []
  const { app } = await buildApp(t, {
    fastify: { logger: { level: 'error', stream: { write: (line: string) => { lines.push(line) } } } },
    routes: (app) => {
      app.post('/throws', (req, reply) => {
        req.session.set('a', 1)
        req.session.save(() => {
          reply.send('sent before the throw')
          throw new Error('thrown by a callback')
        })
      })
    }
  })
  const res = await app.inject({ method: 'POST', url: '/throws' })
  t.equal(res.payload, 'sent before the throw')
  t.ok(lines.some(line => line.includes('thrown by a callback')), 'logged at error')
})

test('property-style data is saved, read, deleted and listed like get/set', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    routes: (app) => {
      app.post('/assign', async (req) => {
        const session = req.session as unknown as Record<string, unknown>
        session.user = { id: 7 }
        session.state = 'abc'
        return { viaGet: req.session.get('user'), modified: req.session.isModified() }
      })
      app.get('/props', async (req) => {
        const session = req.session as unknown as Record<string, unknown>
        return { user: session.user, state: session.state, keys: Object.keys(req.session) }
      })
      app.post('/unassign', async (req) => {
        const session = req.session as unknown as Record<string, unknown>
        delete session.user
        session.state = undefined
        req.session.set('viaSet', 1)
        return { keys: Object.keys(req.session), viaSet: session.viaSet }
      })
    }
  })
  const assign = await app.inject({ method: 'POST', url: '/assign' })
  t.same(assign.json(), { viaGet: { id: 7 }, modified: true })
  const cookie = sessionCookie(assign)
  const stored = JSON.parse(await client.get(sessionKey(prefix, assign.cookies[0].value.split('.')[0])) as string)
  t.same(stored.d, { user: { id: 7 }, state: 'abc' }, 'stored in Redis')
  const props = await app.inject({ url: '/props', headers: { cookie } })
  t.same(props.json(), { user: { id: 7 }, state: 'abc', keys: ['user', 'state'] })
  const unassign = await app.inject({ method: 'POST', url: '/unassign', headers: { cookie } })
  t.same(unassign.json(), { keys: ['viaSet'], viaSet: 1 })
  const read = await app.inject({ url: '/read', headers: { cookie } })
  t.same(read.json().data, { viaSet: 1 })
})

test('property-style values are checked like set(): a value JSON cannot keep fails the request with its code', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    routes: (app) => {
      app.post('/bad', async (req) => {
        (req.session as unknown as Record<string, unknown>).when = new Date(0)
        return 'not reached as 200'
      })
      app.post('/member', async (req) => {
        (req.session as unknown as Record<string, unknown>).get = () => 'shadowed'
        return 'not reached as 200'
      })
      app.post('/reserved', async (req) => {
        req.session.set('get', 'a value under a member name')
        return { viaGet: req.session.get('get'), keys: Object.keys(req.session), method: typeof req.session.get }
      })
    }
  })
  const bad = await app.inject({ method: 'POST', url: '/bad' })
  t.equal(bad.statusCode, 500)
  t.equal(bad.json().code, 'FST_REDIS_SESSION_INVALID_VALUE')
  const member = await app.inject({ method: 'POST', url: '/member' })
  t.equal(member.json().code, 'FST_REDIS_SESSION_INVALID_VALUE')
  t.same(await keysUnder(client, prefix), [], 'nothing stored')
  const reserved = await app.inject({ method: 'POST', url: '/reserved' })
  t.same(reserved.json(), { viaGet: 'a value under a member name', keys: [], method: 'function' }, 'a member name is a key for get/set only')
})

test('setting the same primitive again is no change; an object always counts', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    routes: (app) => {
      app.post('/same', async (req) => {
        req.session.set('n', 1)
        req.session.set('s', 'x')
        const primitives = req.session.isModified()
        req.session.set('list', req.session.get('list'))
        return { primitives, object: req.session.isModified() }
      })
    }
  })
  const first = await app.inject({ method: 'POST', url: '/write', payload: { n: 1, s: 'x', list: [1] } })
  const id = first.json().id
  const before = await client.get(sessionKey(prefix, id))
  const same = await app.inject({ method: 'POST', url: '/same', headers: { cookie: sessionCookie(first) } })
  t.same(same.json(), { primitives: false, object: true })
  t.not(await client.get(sessionKey(prefix, id)), before, 'the object counted as a change, so the version moved')
})

test('expiresAt follows setTtl() and touch() within the request', async (t) => {
  const { app } = await buildApp(t, {
    session: { ttl: 3600, rolling: false },
    routes: (app) => {
      app.post('/ttl', async (req) => {
        const before = req.session.expiresAt
        req.session.setTtl(60)
        const afterSetTtl = req.session.expiresAt
        return { before, afterSetTtl, now: Date.now() }
      })
      app.post('/touch', async (req) => {
        const before = req.session.expiresAt
        req.session.touch()
        return { before, afterTouch: req.session.expiresAt, now: Date.now() }
      })
    }
  })
  const ttl = (await app.inject({ method: 'POST', url: '/ttl' })).json()
  t.ok(ttl.before > ttl.now + 3500_000 && ttl.before <= ttl.now + 3600_000, 'an hour ahead before')
  t.ok(ttl.afterSetTtl > ttl.now + 58_000 && ttl.afterSetTtl <= ttl.now + 60_000, 'a minute ahead after setTtl(60)')
  const first = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const touched = await app.inject({ method: 'POST', url: '/touch', headers: { cookie: sessionCookie(first) } })
  const { before, afterTouch } = touched.json()
  t.ok(afterTouch >= before, 'touch() moves the idle expiry forward, never back')
  t.ok(afterTouch > touched.json().now + 3500_000 && afterTouch <= touched.json().now + 3600_000, 'an idle timeout ahead of now')
})

test('idGenerator receives the request', async (t) => {
  const { app } = await buildApp(t, {
    session: { idGenerator: (request) => `tenant-${String(request.headers['x-tenant'])}-${'0'.repeat(22)}` },
    routes: (app) => {
      app.post('/new', async (req) => {
        req.session.set('a', 1)
        return { id: req.session.id }
      })
    }
  })
  const res = await app.inject({ method: 'POST', url: '/new', headers: { 'x-tenant': 'acme' } })
  t.equal(res.json().id, `tenant-acme-${'0'.repeat(22)}`)
})

test('data() is a copy of the data; options() takes cookie attributes and ignores the rest', async (t) => {
  const { app } = await buildApp(t, {
    routes: (app) => {
      app.post('/remember', async (req) => {
        req.session.set('user', 'ann')
        req.session.options({ maxAge: 3600, userInfo: 'ann' })
        const copy = req.session.data()
        copy.user = 'changed'
        return { user: req.session.get('user') }
      })
      app.post('/csrf-like', async (req) => {
        req.session.options({ userInfo: 'ann' })
        return 'ok'
      })
      app.post('/bad-options', async (req) => {
        req.session.options({ maxAge: -1 })
        return 'not reached'
      })
      app.post('/no-object', async (req) => {
        req.session.options(null as unknown as { maxAge: number })
        return 'not reached'
      })
    }
  })
  const remember = await app.inject({ method: 'POST', url: '/remember' })
  t.same(remember.json(), { user: 'ann' })
  t.match(setCookies(remember)[0], /; Max-Age=3600;/, 'a persistent cookie for this session')
  const plain = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  t.notMatch(setCookies(plain)[0], /Max-Age/, 'others keep browser-session cookies')
  const csrf = await app.inject({ method: 'POST', url: '/csrf-like', headers: { cookie: sessionCookie(plain) } })
  t.equal(csrf.statusCode, 200)
  t.same(setCookies(csrf), [], 'no cookie attribute given: nothing re-sent')
  const bad = await app.inject({ method: 'POST', url: '/bad-options' })
  t.equal(bad.json().code, 'FST_REDIS_SESSION_INVALID_VALUE')
  t.match(bad.json().message, /maxAge/)
  const noObject = await app.inject({ method: 'POST', url: '/no-object' })
  t.equal(noObject.json().code, 'FST_REDIS_SESSION_INVALID_VALUE')
})
