import { test } from 'tap'
import { hashedId, uniquePrefix } from './helpers/app.js'
import { MASTER_NAME, startSentinel, waitFor } from './helpers/redis-server.js'
import { accountApp, Browser, coreBehaviours } from './helpers/scale.js'

test('Redis Sentinel: the core behaviours, then a failover keeps replicated sessions and takes new writes', async (t) => {
  const started = Date.now()
  const deployment = await startSentinel(t)
  t.comment(`master, replica and sentinel ready in ${Date.now() - started} ms`)
  const a = deployment.connect()
  const b = deployment.connect()
  await coreBehaviours(t, a, b, uniquePrefix())

  const prefix = uniquePrefix()
  const app = await accountApp(t, a, { prefix, userKey: 'userId' })
  const before = new Browser()
  const id = (await before.send(app, 'POST', '/login', { userId: 'ann' })).json().id
  await before.send(app, 'POST', '/write', { cart: [1, 2] })
  t.equal(await a.wait(1, 1000), 1, 'replicated to the replica')

  const failoverAt = Date.now()
  t.equal(await deployment.sentinel().call('SENTINEL', 'FAILOVER', MASTER_NAME), 'OK')
  await waitFor('the replica to become master', async () => await deployment.currentMaster() === deployment.replicaPort)
  await waitFor('the client to follow', async () => {
    const role = await a.role().catch(() => ['unreachable'])
    return role[0] === 'master' && a.stream.remotePort === deployment.replicaPort
  })
  t.comment(`failover done in ${Date.now() - failoverAt} ms`)

  const read = (await before.send(app, 'GET', '/me')).json()
  t.same(read.data, { userId: 'ann', cart: [1, 2] }, 'a session written before the failover')
  t.equal(read.id, id)
  t.same((await app.sessions.list('ann')).map(s => s.idHint), [hashedId(id).slice(0, 8)], 'and its index')
  await before.send(app, 'POST', '/write', { paid: true })
  t.same((await before.send(app, 'GET', '/me')).json().data, { userId: 'ann', cart: [1, 2], paid: true }, 'written after it')
  const after = new Browser()
  await after.send(app, 'POST', '/login', { userId: 'ann' })
  t.equal((await app.sessions.list('ann')).length, 2, 'a new session after the failover')
  t.comment(`whole test ${Date.now() - started} ms`)
})
