import { test } from 'tap'
import { uniquePrefix } from './helpers/app.js'
import { startCluster } from './helpers/redis-server.js'
import { accountApp, Browser, coreBehaviours } from './helpers/scale.js'

test('Redis Cluster: the core behaviours through ioredis Cluster clients; sessions spread over every master', async (t) => {
  const started = Date.now()
  const cluster = await startCluster(t)
  t.comment(`3-master cluster ready in ${Date.now() - started} ms`)
  const a = cluster.connect()
  const b = cluster.connect()
  // ioredis refuses a command whose keys span slots (CROSSSLOT): every command here is single-key
  await coreBehaviours(t, a, b, uniquePrefix())

  const prefix = uniquePrefix()
  const app = await accountApp(t, a, { prefix, userKey: 'userId' })
  const masters = a.nodes('master')
  t.equal(masters.length, 3)
  const holding = async (): Promise<number[]> => await Promise.all(masters.map(async node => (await node.scan('0', 'MATCH', `${prefix}*`, 'COUNT', 10_000, 'TYPE', 'string'))[1].length))
  let created = 0
  while (created < 60 && (await holding()).some(n => n === 0)) {
    await new Browser().send(app, 'POST', '/login', { userId: 'spread' })
    created++
  }
  t.ok((await holding()).every(n => n > 0), `sessions on every master after ${created} logins`)
  t.equal(await app.sessions.count(), created, 'count scans every master')
  t.equal((await app.sessions.list('spread')).length, created, 'one user\'s index lists sessions from every slot')
  t.equal(await app.sessions.destroyAll('spread'), created)
  t.equal(await app.sessions.count(), 0)
  t.comment(`whole test ${Date.now() - started} ms`)
})
