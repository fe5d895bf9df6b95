// Finds a Redis for the demo: REDIS_URL, else a local one on 6379, else a private redis-server.
import { spawn } from 'node:child_process'
import { createServer, Socket } from 'node:net'
import { once } from 'node:events'

const LOCAL_PORT = 6379
const START_TIMEOUT_MS = 10_000

/** True when something on 127.0.0.1:port answers PING with PONG within half a second. */
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

async function freePort () {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  server.close()
  await once(server, 'close')
  return port
}

/** Starts `redis-server` from PATH on a free loopback port, without persistence; null when there is none. */
async function startPrivate () {
  const port = await freePort()
  const child = spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'
  ], { stdio: 'ignore', detached: true }) // its own process group: Ctrl-C reaches the demo, which stops it in order
  let missing = false
  child.once('error', () => { missing = true }) // ENOENT: no redis-server on PATH
  const deadline = Date.now() + START_TIMEOUT_MS
  let ready = false
  while (!ready && Date.now() < deadline) {
    if (missing || child.exitCode !== null) break
    ready = await answersPing(port)
    if (!ready) await new Promise(resolve => setTimeout(resolve, 50))
  }
  if (!ready) {
    if (!missing) child.kill('SIGKILL')
    return null
  }
  // a crash of the demo must not leave the server behind
  const killOnExit = () => child.kill('SIGKILL')
  process.once('exit', killOnExit)
  return {
    url: `redis://127.0.0.1:${port}`,
    description: `a private redis-server on port ${port}, stopped when the demo exits`,
    async stop () {
      process.removeListener('exit', killOnExit)
      if (child.exitCode !== null || child.signalCode !== null) return
      const gone = once(child, 'exit')
      child.kill('SIGTERM')
      await gone
    }
  }
}

/** The Redis the demo uses, or null when none can be found or started. */
export async function findRedis (env = process.env) {
  if (env.REDIS_URL) return { url: env.REDIS_URL, description: 'REDIS_URL', stop: async () => {} }
  if (await answersPing(LOCAL_PORT)) {
    return { url: `redis://127.0.0.1:${LOCAL_PORT}`, description: `the local Redis on port ${LOCAL_PORT}`, stop: async () => {} }
  }
  return startPrivate()
}
