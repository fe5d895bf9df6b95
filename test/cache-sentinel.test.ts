import { test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { uniquePrefix } from './helpers/app.js'
import { MASTER_NAME, startSentinel, waitFor } from './helpers/redis-server.js'
import { accountApp, Browser } from './helpers/scale.js'
import { LEASE, answering, read, trackingClients, warm } from './helpers/cache.js'

test('Redis Sentinel with cache: a failover is a reconnect; the cache follows the new master and misses no write', async (t) => {
  const deployment = await startSentinel(t)
  const prefix = uniquePrefix()
  const options = { prefix, userKey: 'userId', cache: { lease: LEASE } }
  const client = deployment.connect()
  const a = await accountApp(t, client, options)
  const b = await accountApp(t, deployment.connect(), options)
  await Promise.all([answering(a), answering(b)])
  const browser = new Browser()
  await browser.send(a, 'POST', '/login', { userId: 'mia' })
  const cookie = browser.cookie!
  await warm(b, cookie)
  // the sessions went through the caches' own connections: a write of this client's, once replicated, follows them
  await client.set(`fence:${prefix}`, '1')
  t.equal(await client.wait(1, 1000), 1, 'replicated to the replica')

  t.equal(await deployment.sentinel().call('SENTINEL', 'FAILOVER', MASTER_NAME), 'OK')
  await waitFor('the replica to become master', async () => await deployment.currentMaster() === deployment.replicaPort)
  await waitFor('both caches to track at the new master', async () => (await trackingClients(deployment.replicaPort)).length === 2)
  t.same(await trackingClients(deployment.masterPort), [], 'none left at the old one')

  await waitFor('A to write at the new master', async () => (await browser.send(a, 'POST', '/write', { plan: 'pro' })).statusCode === 200)
  await sleep(LEASE)
  t.equal(browser.cookie, cookie, 'the same session')
  const seen = await read(b, cookie)
  t.same(seen.res.json().data, { userId: 'mia', plan: 'pro' }, 'B sees the write made after the failover')
  await warm(b, cookie)
  t.pass('and its cache answers again')
})
