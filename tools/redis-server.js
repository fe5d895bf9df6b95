// Starts and stops private redis-server processes on loopback ports. The one launcher the tests
// (through test/helpers/redis-server.ts), the demo and the benchmark share: Node built-ins only,
// so any of them can import it. Its types, and what each option means: redis-server.d.ts.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer, Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

/** Nothing persisted, nothing daemonized, only warnings logged (to stdout, which is ignored). */
const QUIET = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning', '--logfile', '']

const running = new Set()
// a parent that exits (or crashes) never leaves a server behind
process.once('exit', () => { for (const child of running) child.kill('SIGKILL') })

/** A port nothing listens on at the moment, on 127.0.0.1. */
export async function freePort () {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  server.close()
  await once(server, 'close')
  return port
}

/** True when something on 127.0.0.1:`port` answers PING with PONG within half a second. */
export function answersPing (port) {
  return new Promise(resolve => {
    const socket = new Socket()
    const done = (ok) => { socket.destroy(); resolve(ok) }
    socket.setTimeout(500, () => done(false))
    socket.once('error', () => done(false))
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')))
    socket.connect(port, '127.0.0.1', () => socket.write('PING\r\n'))
  })
}

/**
 * Calls `check` until it returns true, at most `tries` times and for at most `timeout` ms; throws
 * naming `what` when it never does. An error `check` throws ends the wait at once.
 */
export async function waitFor (what, check, { timeout = 15_000, interval = 50, tries = Math.ceil(timeout / interval) + 1 } = {}) {
  const deadline = Date.now() + timeout
  for (let tried = 0; tried < tries; tried++) {
    if (await check()) return
    if (Date.now() >= deadline) break
    await sleep(interval)
  }
  throw new Error(`timed out waiting for ${what} (${timeout} ms, ${tries} tries)`)
}

/**
 * Starts a redis-server and resolves once it answers PING. It never keeps the parent alive and is
 * killed when the parent exits; a start that fails (no redis-server on PATH: `code` ENOENT) throws.
 */
export async function startRedisServer (options = {}) {
  const { args = [], config, sentinel = false, wrapper = [], detached = false } = options
  const port = options.port ?? await freePort()
  const startTimeout = options.startTimeout ?? (wrapper.length === 0 ? 10_000 : 60_000)
  const argv = [...wrapper, 'redis-server', ...(config === undefined ? [] : [config]), ...(sentinel ? ['--sentinel'] : []),
    '--port', String(port), ...QUIET, ...args]
  let child = await launch(argv, port, startTimeout, detached)
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: () => child.pid,
    pause: () => { child.kill('SIGSTOP') },
    resume: () => { child.kill('SIGCONT') },
    kill: () => terminate(child, 'SIGKILL'),
    restart: async () => {
      await terminate(child, 'SIGKILL')
      child = await launch(argv, port, startTimeout, detached)
    },
    stop: () => terminate(child, 'SIGTERM')
  }
}

async function launch ([command, ...args], port, startTimeout, detached) {
  const child = spawn(command, args, { stdio: 'ignore', detached })
  // never what keeps the parent alive; the exit handler above kills whatever is left
  child.unref()
  running.add(child)
  let failure
  child.once('error', (err) => {
    failure = err
    running.delete(child)
  })
  child.once('exit', () => running.delete(child))
  try {
    await waitFor(`redis-server on port ${port}`, async () => {
      if (failure !== undefined) throw failure
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`redis-server on port ${port} exited (code ${child.exitCode}, signal ${child.signalCode})`)
      }
      return await answersPing(port)
    }, { timeout: startTimeout, interval: 20 })
  } catch (err) {
    await terminate(child, 'SIGKILL')
    throw err
  }
  return child
}

async function terminate (child, signal) {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  // an unref'd child would let the parent end before its exit is reported, with this still pending
  child.ref()
  // a paused server acts on SIGTERM only once it runs again
  child.kill('SIGCONT')
  child.kill(signal)
  await exited
}
