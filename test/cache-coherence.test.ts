import { test } from 'tap'
import { Browser } from './helpers/scale.js'
import { cachePair, invalidations, read, trackingClients, warm } from './helpers/cache.js'

// With the cache on, a change made through one instance reaches every other instance's next read
// once the invalidation has arrived: A writes, B reads.

test('B answers from its cache, and sees a write on A once the invalidation arrived', async (t) => {
  const { a, b, server } = await cachePair(t)
  t.equal((await trackingClients(server.port)).length, 2, 'one tracking connection per instance')
  const browser = new Browser()
  await browser.send(a, 'POST', '/login', { userId: 'alice' })
  const cookie = browser.cookie!
  // a read answered from B's cache
  const cached = await warm(b, cookie)
  t.same(cached.json().data, { userId: 'alice' }, 'B answers from its cache')

  const before = b.sessions.stats().cacheInvalidations
  await browser.send(a, 'POST', '/write', { plan: 'pro' })
  await invalidations(b, before)
  const after = await read(b, cookie)
  t.notOk(after.hit, 'the entry is gone')
  t.same(after.res.json().data, { userId: 'alice', plan: 'pro' }, 'B sees the write')
  await warm(b, cookie)
  t.same((await read(b, cookie)).res.json().data, { userId: 'alice', plan: 'pro' }, 'and caches the new version')
})

test('a logout, a login, sessions.destroy and destroyAll on A end the session B had cached', async (t) => {
  const { a, b } = await cachePair(t)

  const ended = async (what: string, end: (browser: Browser) => Promise<unknown>): Promise<void> => {
    const browser = new Browser()
    await browser.send(a, 'POST', '/login', { userId: `user-${what}` })
    const cookie = browser.cookie!
    await warm(b, cookie)
    const before = b.sessions.stats().cacheInvalidations
    await end(browser)
    await invalidations(b, before)
    const seen = await read(b, cookie)
    t.notOk(seen.hit, `${what}: not answered from the cache`)
    t.equal(seen.res.json().isNew, true, `${what}: B finds the session ended`)
  }
  await ended('destroy()', (browser) => browser.send(a, 'POST', '/logout'))
  await ended('regenerate()', (browser) => browser.send(a, 'POST', '/regenerate'))
  await ended('sessions.destroy', async (browser) => {
    const { id } = (await browser.send(a, 'GET', '/me')).json()
    t.equal(await a.sessions.destroy(id), true)
  })
  await ended('destroyAll', async () => { t.equal(await a.sessions.destroyAll('user-destroyAll'), 1) })
})

test('the writing instance drops its own entry at once, before any invalidation arrives', async (t) => {
  const { a } = await cachePair(t)
  const browser = new Browser()
  await browser.send(a, 'POST', '/login', { userId: 'bob' })
  const cookie = browser.cookie!
  await warm(a, cookie)
  await browser.send(a, 'POST', '/write', { step: 1 })
  const next = await read(a, cookie)
  t.notOk(next.hit, 'the next read goes to Redis')
  t.same(next.res.json().data, { userId: 'bob', step: 1 })
  await warm(a, cookie)
  await browser.send(a, 'POST', '/logout')
  const gone = await read(a, cookie)
  t.notOk(gone.hit)
  t.equal(gone.res.json().isNew, true, 'a logout is seen at once')
})

test('100 parallel increments split across A and B, both caching, give 100', async (t) => {
  const { a, b } = await cachePair(t)
  const browser = new Browser()
  await browser.send(a, 'POST', '/write', { n: 0 })
  const cookie = browser.cookie!
  await Promise.all([warm(a, cookie), warm(b, cookie)])
  const answers = await Promise.all(Array.from({ length: 100 }, (_, i) =>
    (i % 2 === 0 ? a : b).inject({ method: 'POST', url: '/increment', headers: { cookie } })))
  t.same(answers.map(res => res.statusCode), Array(100).fill(200), 'every increment answered 200')
  const stats = [a.sessions.stats(), b.sessions.stats()]
  t.ok(stats[0].cacheHits + stats[1].cacheHits > 2, 'some loads were answered from the caches')
  const final = await a.inject({ method: 'POST', url: '/increment', headers: { cookie } })
  t.equal(final.json().n, 101, 'all 100 landed')
})
