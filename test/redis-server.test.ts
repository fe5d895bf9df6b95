import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { test } from 'tap'
import { startRedisServer, waitFor } from '../tools/redis-server.js'

const run = promisify(execFile)

test('waitFor: resolves once the check holds; gives up after its tries or its time, whichever comes first', async (t) => {
  let checks = 0
  await waitFor('the third check', () => ++checks === 3, { interval: 1 })
  t.equal(checks, 3)
  await waitFor('an async check', async () => true)

  checks = 0
  await t.rejects(waitFor('never', () => { checks++; return false }, { interval: 1, tries: 4 }), /timed out waiting for never/)
  t.equal(checks, 4, 'no more checks than its tries')

  checks = 0
  const started = Date.now()
  await t.rejects(waitFor('never', () => { checks++; return false }, { interval: 10, timeout: 50, tries: 1000 }), /timed out waiting for never \(50 ms/)
  t.ok(checks < 1000, `stopped by the time: ${checks} checks`)
  t.ok(Date.now() - started >= 50, 'not before its time')

  await t.rejects(waitFor('a failing check', () => { throw new Error('broken') }), /broken/, 'an error in the check ends the wait')
})

test('a server starts on a free port, in its own process group when detached, and stops', async (t) => {
  const server = await startRedisServer({ detached: true })
  t.teardown(() => server.stop())
  t.equal(server.url, `redis://127.0.0.1:${server.port}`)
  const pid = server.pid()
  t.ok(pid !== undefined && pid > 0)
  const { stdout } = await run('ps', ['-o', 'pgid=', '-p', String(pid)])
  t.equal(Number(stdout.trim()), pid, 'leads its own process group: a Ctrl-C in the terminal does not reach it')
  await server.stop()
  await server.stop()
  t.throws(() => process.kill(pid!, 0), { code: 'ESRCH' }, 'gone, and stopping twice is harmless')
})

test('a wrapper runs the server', async (t) => {
  const server = await startRedisServer({ wrapper: ['env', 'WRAPPED=1'] })
  t.teardown(() => server.stop())
  const { stdout } = await run('ps', ['-o', 'args=', '-p', String(server.pid())])
  t.match(stdout, /redis-server 127\.0\.0\.1:\d+/, 'env executes redis-server in its own process')
})

test('a server that cannot start: the start fails and leaves nothing running', async (t) => {
  await t.rejects(startRedisServer({ wrapper: ['/nonexistent/redis-wrapper'] }), { code: 'ENOENT' }, 'no such program')
  await t.rejects(startRedisServer({ args: ['--no-such-option', 'yes'] }), /exited \(code 1, signal null\)/, 'refused its arguments')
  // a sleep no other process runs: ps can tell whether it is still there
  const marker = `sleep 30.${process.pid}${Date.now() % 1000}`
  await t.rejects(startRedisServer({ wrapper: ['sh', '-c', `exec ${marker}`], startTimeout: 300 }),
    /timed out waiting for redis-server on port \d+ \(300 ms/, 'no answer in time')
  const { stdout } = await run('ps', ['-eo', 'args=']).catch(() => ({ stdout: '' }))
  t.notMatch(stdout, marker, 'the process that never answered is killed')
})
