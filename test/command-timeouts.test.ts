import { test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { CommandTimeouts } from '../lib/redis/command-timeouts.js'
import { SessionStore } from '../lib/redis/store.js'
import { newStats } from '../lib/model/stats.js'
import { connect } from './helpers/app.js'
import { startRedis, waitFor } from './helpers/redis-server.js'

/** Checks every 5 ms, at most 400 times and for at most 2 s: the timeouts here are 10 and 20 ms. */
const WAIT = { interval: 5, tries: 400, timeout: 2000 }

test('one shared timer: late commands expire once, in order; settled ones never do', async (t) => {
  const timeouts = new CommandTimeouts(20)
  const expired: string[] = []
  const first = timeouts.add(() => expired.push('first'))
  const answered = timeouts.add(() => expired.push('answered'))
  const second = timeouts.add(() => expired.push('second'))
  const newest = timeouts.add(() => expired.push('newest'))
  t.equal(timeouts.stop(answered), true, 'a reply in time stops the watch')
  t.equal(timeouts.stop(newest), true, 'also for the newest command')
  t.equal(timeouts.stop(newest), false, 'once')
  await waitFor('the two late commands to expire', () => expired.length >= 2, WAIT)
  t.same(expired, ['first', 'second'])
  t.equal(timeouts.stop(first), false, 'a reply after the timeout is recognised as late')
  t.equal(timeouts.stop(second), false)
  await sleep(60)
  t.same(expired, ['first', 'second'], 'nothing expires twice')
})

test('the timer stops when nothing is in flight, and starts again with the next command', async (t) => {
  const timeouts = new CommandTimeouts(10)
  const handles = (): number => process.getActiveResourcesInfo().filter(r => r === 'Timeout').length
  const before = handles()
  const first = timeouts.add(() => t.fail('settled in time'))
  t.equal(handles(), before + 1, 'one timer for the commands in flight')
  timeouts.add(() => {})
  t.equal(handles(), before + 1, 'still one timer for two commands')
  timeouts.stop(first)
  await waitFor('the timer to stop', () => handles() === before, WAIT)
  t.equal(handles(), before, 'stopped once the last command had expired')
  const late: string[] = []
  timeouts.add(() => late.push('late'))
  await waitFor('the late command to expire', () => late.length > 0, WAIT)
  t.same(late, ['late'], 'a command after the pause is watched again')
})

test('a Redis error that arrives after the timeout is ignored: one 503, counted once', async (t) => {
  const server = await startRedis()
  const client = await connect(t, server.url)
  const stats = newStats()
  const store = new SessionStore({ client, prefix: 'deadlines:', timeout: 20, stats })
  // a hash where a session string should be: the load fails with WRONGTYPE, but only once a
  // script sent first on the same connection has kept Redis busy for 100 ms, well after the timeout
  await client.hset('deadlines:late', 'not', 'a session')
  const busy = client.eval(`
    local start = redis.call('TIME')
    repeat
      local now = redis.call('TIME')
    until (now[1] - start[1]) * 1000000 + (now[2] - start[2]) > 100000
    return 1`, 0)
  await t.rejects(store.load('late', Date.now(), 60, true), { code: 'FST_REDIS_SESSION_STORE_UNAVAILABLE', message: /load took longer than 20 ms/ })
  await busy
  await t.rejects(client.getex('deadlines:late', 'EX', 60), /WRONGTYPE/, 'the load did fail, later')
  t.equal(stats.storeErrors, 1, 'the late error neither rejects again nor counts again')
  await client.del('deadlines:late')
  t.teardown(() => server.stop())
})
