import { test } from 'tap'
import { connect, sharedRedisUrl } from '../helpers/app.js'
import { monitorRedis } from '../helpers/monitor.js'

const STARTS = 40
const IN_FLIGHT = 20

// ioredis enters MONITOR mode one tick after Redis's OK, so a command another client sent in that
// gap reached it as a reply nobody asked for: the start was rejected, and the next such reply was
// thrown from the socket's data handler. The round-trip counts failed that way once in CI.
test('the command monitor starts while another client keeps Redis busy', async (t) => {
  const url = await sharedRedisUrl()
  const busy = await connect(t, url)
  await busy.ping()
  const stop = new AbortController()
  const load = (async () => {
    for (let batch = 0; !stop.signal.aborted && batch < 100_000; batch++) {
      await Promise.all(Array.from({ length: IN_FLIGHT }, async () => await busy.ping()))
    }
  })()
  try {
    for (let i = 0; i < STARTS; i++) {
      await t.test(`start ${i + 1}`, async (st) => {
        const monitor = await monitorRedis(st, url)
        const mark = `after-start-${i}`
        await busy.echo(mark)
        const seen = await monitor.takeFrom(busy)
        st.ok(seen.some(c => c.name === 'echo' && c.args[0] === mark), 'a command sent after the start is reported')
        st.ok(seen.every(c => c.name === 'ping' || c.name === 'echo'), 'every command reported is one the client sent')
      })
    }
  } finally {
    stop.abort()
    await load
  }
})
