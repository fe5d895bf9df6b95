import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Cluster, Redis } from 'ioredis'
import type { Test } from 'tap'
import { freePort } from './redis-server.js'

const run = promisify(execFile)

const children = new Set<ChildProcess>()
process.once('exit', () => { for (const child of children) child.kill('SIGKILL') })

/** Processes a test started, killed together at its teardown, then their directory removed. */
export class Processes {
  readonly #children: ChildProcess[] = []
  readonly #clients: Array<Redis | Cluster> = []

  constructor (t: Test, dir?: string) {
    t.teardown(async () => {
      // clients first: a client that sees its servers die mid-teardown reconnects and reports errors
      for (const client of this.#clients) client.disconnect()
      await Promise.all(this.#children.map(kill))
      if (dir !== undefined) await rm(dir, { recursive: true, force: true })
    })
  }

  /** Starts one redis-server with extra arguments on `port` and waits until it answers. */
  redis (port: number, args: string[]): Promise<void> {
    return this.#start(port, [...args, '--port', String(port), '--bind', '127.0.0.1',
      '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning', '--logfile', ''])
  }

  /** Starts a sentinel from its config file (which names its port) and waits until it answers. */
  sentinel (port: number, conf: string): Promise<void> {
    return this.#start(port, [conf, '--sentinel'])
  }

  async #start (port: number, args: string[]): Promise<void> {
    const child = spawn('redis-server', args, { stdio: 'ignore' })
    child.unref()
    children.add(child)
    child.once('exit', () => children.delete(child))
    // owned before it answers: a start that times out is still killed at teardown
    this.#children.push(child)
    await waitFor(`redis-server on port ${port}`, async () => {
      if (child.exitCode !== null) throw new Error(`redis-server on port ${port} exited with ${child.exitCode}`)
      return (await info(port, 'PING')) === 'PONG'
    })
  }

  /** Disconnects `client` at teardown, before the servers stop. */
  track<C extends Redis | Cluster> (client: C): C {
    this.#clients.push(client)
    return client
  }
}

async function kill (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise(resolve => child.once('exit', resolve))
  // unref'd children do not keep the event loop alive: without this the test could end before the exit
  child.ref()
  child.kill('SIGKILL')
  await exited
}

/** One command through redis-cli; '' when the server does not answer. */
export async function info (port: number, ...command: string[]): Promise<string> {
  try {
    const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...command], { timeout: 2000 })
    return stdout.trim()
  } catch {
    return ''
  }
}

/** Polls `check` every 50 ms for at most `ms`; throws naming `what` when it never holds. */
export async function waitFor (what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  throw new Error(`timed out waiting for ${what}`)
}

export interface RedisCluster {
  ports: number[]
  /** An ioredis Cluster client, disconnected at teardown. */
  connect (): Cluster
}

/** A 3-master Redis Cluster on loopback ports; every process and the config directory go at teardown. */
export async function startCluster (t: Test): Promise<RedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'redis-cluster-'))
  const processes = new Processes(t, dir)
  const ports = [await freePort(), await freePort(), await freePort()]
  await Promise.all(ports.map(port => processes.redis(port, [
    '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--dir', dir
  ])))
  await run('redis-cli', ['--cluster', 'create', ...ports.map(p => `127.0.0.1:${p}`), '--cluster-yes'], { timeout: 20_000 })
  for (const port of ports) {
    await waitFor(`cluster_state:ok on ${port}`, async () => (await info(port, 'CLUSTER', 'INFO')).includes('cluster_state:ok'))
  }
  return {
    ports,
    connect () {
      return processes.track(new Cluster(ports.map(port => ({ host: '127.0.0.1', port })), { redisOptions: { maxRetriesPerRequest: 1 } }))
    }
  }
}
