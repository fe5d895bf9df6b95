import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { once } from 'node:events'

/** A private redis-server on a free loopback port, which a test may kill, pause or restart. */
export interface RedisServer {
  readonly port: number
  readonly url: string
  /** SIGSTOP: the server stops answering but keeps its connections open. */
  pause (): void
  resume (): void
  /** Stops the process (SIGKILL: no goodbye to clients). */
  kill (): Promise<void>
  /** Starts it again on the same port (empty: nothing is persisted). */
  restart (): Promise<void>
  stop (): Promise<void>
}

export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  server.close()
  await once(server, 'close')
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

const running = new Set<ChildProcess>()
process.once('exit', () => { for (const child of running) child.kill('SIGKILL') })

async function launch (port: number, extra: string[]): Promise<ChildProcess> {
  const child = spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--daemonize', 'no', '--loglevel', 'warning', '--logfile', '', ...extra
  ], { stdio: 'ignore' })
  // never what keeps a test process alive; the exit handler above kills whatever is left
  child.unref()
  running.add(child)
  child.once('exit', () => running.delete(child))
  await waitForPort(port, child)
  return child
}

async function waitForPort (port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server on port ${port} exited with ${child.exitCode}`)
    if (await answersPing(port)) return
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  child.kill('SIGKILL')
  throw new Error(`redis-server on port ${port} did not start within 10 s`)
}

async function answersPing (port: number): Promise<boolean> {
  const { Socket } = await import('node:net')
  return await new Promise(resolve => {
    const socket = new Socket()
    const done = (ok: boolean): void => { socket.destroy(); resolve(ok) }
    socket.setTimeout(500, () => done(false))
    socket.once('error', () => done(false))
    socket.connect(port, '127.0.0.1', () => socket.write('PING\r\n'))
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')))
  })
}

async function terminate (child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  // an unref'd child would let the process end before its exit is reported, with this still pending
  child.ref()
  child.kill('SIGCONT')
  child.kill(signal)
  await exited
}

/** Starts a redis-server; extra arguments go to its command line. */
export async function startRedis (extra: string[] = []): Promise<RedisServer> {
  const port = await freePort()
  let child = await launch(port, extra)
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pause: () => { child.kill('SIGSTOP') },
    resume: () => { child.kill('SIGCONT') },
    kill: () => terminate(child, 'SIGKILL'),
    restart: async () => {
      await terminate(child, 'SIGKILL')
      child = await launch(port, extra)
    },
    stop: () => terminate(child, 'SIGTERM')
  }
}
