import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { test, type Test } from 'tap'
import { startDemo, type DemoProcess } from './helpers/demo.js'
import { waitFor } from './helpers/redis-server.js'

const run = promisify(execFile)
const GONE_WITHIN = { timeout: 10_000 }

async function ps (pid: number, fields: string): Promise<string> {
  try {
    return (await run('ps', ['-o', fields, '-p', String(pid)])).stdout.trim()
  } catch {
    return '' // no such process
  }
}

/** False once no process has the id (ESRCH), or its process has exited and only awaits reaping. */
async function alive (pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false
    throw err
  }
  // an orphan that exited is a zombie until init reaps it, and signals still reach a zombie
  const state = await ps(pid, 'stat=')
  return state !== '' && !state.startsWith('Z')
}

async function parentOf (pid: number): Promise<number> {
  return Number(await ps(pid, 'ppid='))
}

/** What tells a process from a later one that got its id: its start time and command. */
async function identity (pid: number): Promise<string> {
  return await ps(pid, 'lstart=,comm=')
}

/**
 * The demo with a private redis-server of its own, and the ids of both processes. Whatever the
 * test leaves running is killed at teardown.
 */
async function privateDemo (t: Test, shell = false): Promise<{ demo: DemoProcess, demoPid: number, redisPid: number }> {
  const demo = await startDemo({ shell })
  const said = /a private redis-server on port \d+ \(pid (\d+)\)/.exec(demo.output())
  if (said === null) throw new Error(`the demo started no private redis-server:\n${demo.output()}`)
  const redisPid = Number(said[1])
  const demoPid = await parentOf(redisPid)
  const started = new Map([[demoPid, await identity(demoPid)], [redisPid, await identity(redisPid)]])
  t.teardown(async () => {
    await demo.stop()
    // only the processes this test started: an id may have been reused since
    for (const [pid, was] of started) if (was !== '' && await identity(pid) === was) process.kill(pid, 'SIGKILL')
  })
  t.ok(await alive(redisPid), 'the demo started its redis-server')
  return { demo, demoPid, redisPid }
}

async function assertGone (t: Test, demoPid: number, redisPid: number): Promise<void> {
  await waitFor('the demo\'s redis-server to exit', async () => !await alive(redisPid), GONE_WITHIN)
  t.notOk(await alive(redisPid), 'no orphan redis-server')
  await waitFor('the demo to exit', async () => !await alive(demoPid), GONE_WITHIN)
  t.notOk(await alive(demoPid), 'no orphan demo')
}

for (const signal of ['SIGHUP', 'SIGTERM', 'SIGINT'] as const) {
  test(`${signal} to the demo stops it and its redis-server`, async (t) => {
    const { demo, demoPid, redisPid } = await privateDemo(t)
    t.equal(demoPid, demo.pid, 'the redis-server is the demo\'s child')
    t.equal(await demo.stop(signal), 0, 'exits with 0', { output: demo.output() })
    t.match(demo.output(), `${signal}: shutting down`)
    await assertGone(t, demoPid, redisPid)
  })
}

test('SIGTERM to npm, which ends the shell between npm and the demo: the orphaned demo stops, with its redis-server', async (t) => {
  const { demo, demoPid, redisPid } = await privateDemo(t, true)
  t.not(demoPid, demo.pid, 'a shell runs the demo')
  t.equal(await parentOf(demoPid), demo.pid, 'the shell is the demo\'s parent')
  // npm passes its SIGTERM to the shell it started, and dash dies of it without passing it on
  await demo.stop('SIGTERM')
  await assertGone(t, demoPid, redisPid)
  await waitFor('the demo\'s last words', () => demo.output().includes('shutting down'), GONE_WITHIN)
  t.match(demo.output(), 'parent process gone: shutting down')
})

test('what a logged-in session sees, and the answers that log in and out, are never cached', async (t) => {
  const { demo } = await privateDemo(t)
  const { url } = demo
  const manual = { redirect: 'manual' } as const
  const login = await fetch(`${url}/login`, { ...manual, method: 'POST', body: new URLSearchParams({ username: 'ann' }) })
  t.equal(login.status, 303)
  t.equal(login.headers.get('cache-control'), 'no-store', 'logging in')
  const cookie = login.headers.getSetCookie().map(header => header.split(';')[0]).join('; ')
  t.match(cookie, /^sid=/)
  for (const path of ['/', '/members']) {
    const page = await fetch(`${url}${path}`, { ...manual, headers: { cookie } })
    t.equal(page.status, 200, `${path}: shown`)
    t.match(await page.text(), 'ann', `${path}: to ann`)
    t.equal(page.headers.get('cache-control'), 'no-store', `${path}: not cached`)
  }
  const loggedIn = await fetch(`${url}/login`, { ...manual, headers: { cookie } })
  t.equal(loggedIn.status, 302, 'the login page sends a logged-in session home')
  t.equal(loggedIn.headers.get('cache-control'), 'no-store')
  const logout = await fetch(`${url}/logout`, { ...manual, method: 'POST', headers: { cookie } })
  t.equal(logout.status, 303)
  t.equal(logout.headers.get('cache-control'), 'no-store', 'logging out')
  const after = await fetch(`${url}/`, { ...manual, headers: { cookie } })
  t.equal(after.headers.get('location'), '/login', 'logged out')
  const stylesheet = await fetch(`${url}/style.css`)
  t.equal(stylesheet.headers.get('cache-control'), 'public, max-age=300', 'what no session shapes stays cacheable')
})
