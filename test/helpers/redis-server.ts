import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Cluster, Redis } from 'ioredis'
import type { Test } from 'tap'
import { freePort, startRedisServer, waitFor, type RedisServer, type RedisServerOptions } from '../../tools/redis-server.js'

export { freePort, waitFor, type RedisServer }

const run = promisify(execFile)

/** Starts a private redis-server on a free loopback port; extra arguments go to its command line. */
export async function startRedis (extra: string[] = []): Promise<RedisServer> {
  return await startRedisServer({ args: extra })
}

/** One command through redis-cli; '' when the server does not answer. */
export async function redisCli (port: number, ...command: string[]): Promise<string> {
  try {
    const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...command], { timeout: 2000 })
    return stdout.trim()
  } catch {
    return ''
  }
}

/** The servers and clients of one test's deployment: at teardown the clients go, then the servers, then `dir`. */
class Deployment {
  readonly dir: string
  readonly #servers: RedisServer[] = []
  readonly #clients: Array<Redis | Cluster> = []

  constructor (t: Test, dir: string) {
    this.dir = dir
    t.teardown(async () => {
      // clients first: a client that sees its servers die mid-teardown reconnects and reports errors
      for (const client of this.#clients) client.disconnect()
      await Promise.all(this.#servers.map(server => server.kill()))
      await rm(dir, { recursive: true, force: true })
    })
  }

  static async create (t: Test, name: string): Promise<Deployment> {
    return new Deployment(t, await mkdtemp(join(tmpdir(), `${name}-`)))
  }

  async start (options: RedisServerOptions): Promise<RedisServer> {
    const server = await startRedisServer({ ...options, args: ['--dir', this.dir, ...options.args ?? []] })
    this.#servers.push(server)
    return server
  }

  /** Disconnects `client` at teardown, before the servers stop. */
  track<C extends Redis | Cluster> (client: C): C {
    this.#clients.push(client)
    return client
  }
}

export interface RedisCluster {
  ports: number[]
  /** An ioredis Cluster client, disconnected at teardown. */
  connect (): Cluster
}

/** A 3-master Redis Cluster on loopback ports; every process and the config directory go at teardown. */
export async function startCluster (t: Test): Promise<RedisCluster> {
  const deployment = await Deployment.create(t, 'redis-cluster')
  const ports = [await freePort(), await freePort(), await freePort()]
  await Promise.all(ports.map(port => deployment.start({
    port, args: ['--cluster-enabled', 'yes', '--cluster-config-file', join(deployment.dir, `nodes-${port}.conf`)]
  })))
  await run('redis-cli', ['--cluster', 'create', ...ports.map(p => `127.0.0.1:${p}`), '--cluster-yes'], { timeout: 20_000 })
  for (const port of ports) {
    await waitFor(`cluster_state:ok on ${port}`, async () => (await redisCli(port, 'CLUSTER', 'INFO')).includes('cluster_state:ok'))
  }
  return {
    ports,
    connect () {
      return deployment.track(new Cluster(ports.map(port => ({ host: '127.0.0.1', port })), { redisOptions: { maxRetriesPerRequest: 1 } }))
    }
  }
}

export const MASTER_NAME = 'mymaster'

export interface RedisSentinel {
  masterPort: number
  replicaPort: number
  sentinelPort: number
  /** An ioredis client that finds the master through the sentinel; disconnected at teardown. */
  connect (): Redis
  /** A plain connection to the sentinel itself; disconnected at teardown. */
  sentinel (): Redis
  /** The port the sentinel currently names as master. */
  currentMaster (): Promise<number>
}

/**
 * A master, one replica and one sentinel on loopback ports, the sentinel ready to fail over (it
 * knows the replica, whose link to the master is up). Everything stops at teardown.
 */
export async function startSentinel (t: Test): Promise<RedisSentinel> {
  const deployment = await Deployment.create(t, 'redis-sentinel')
  // no 5 s wait before the replica's first sync
  const master = await deployment.start({ args: ['--repl-diskless-sync-delay', '0'] })
  const replica = await deployment.start({ args: ['--replicaof', '127.0.0.1', String(master.port)] })
  await waitFor('the replica link', async () => (await redisCli(replica.port, 'INFO', 'replication')).includes('master_link_status:up'))
  const sentinelPort = await freePort()
  const config = join(deployment.dir, 'sentinel.conf')
  // the sentinel rewrites its file, so it must be its own and writable
  await writeFile(config, [
    'sentinel resolve-hostnames no',
    `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${master.port} 1`,
    `sentinel down-after-milliseconds ${MASTER_NAME} 1000`,
    `sentinel failover-timeout ${MASTER_NAME} 5000`,
    // named up front: discovering it takes the sentinel up to one 10 s INFO period
    `sentinel known-replica ${MASTER_NAME} 127.0.0.1 ${replica.port}`,
    ''
  ].join('\n'))
  await deployment.start({ port: sentinelPort, config, sentinel: true })
  await waitFor('the sentinel to know the replica', async () => {
    const replicas = await redisCli(sentinelPort, 'SENTINEL', 'REPLICAS', MASTER_NAME)
    return replicas.includes(String(replica.port)) && !/s_down|disconnected/.test(replicas)
  })
  return {
    masterPort: master.port,
    replicaPort: replica.port,
    sentinelPort,
    // a client closed while it re-subscribes after a failover can leave its failover detector's
    // sentinel connection behind; without retries, that one ends with the sentinel at teardown
    connect: () => deployment.track(new Redis({
      sentinels: [{ host: '127.0.0.1', port: sentinelPort }], name: MASTER_NAME, failoverDetector: true, sentinelReconnectStrategy: () => null, maxRetriesPerRequest: 3
    })),
    sentinel: () => deployment.track(new Redis({ host: '127.0.0.1', port: sentinelPort, maxRetriesPerRequest: 1 })),
    async currentMaster () {
      const reply = await redisCli(sentinelPort, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER_NAME)
      return Number(reply.split('\n')[1])
    }
  }
}
