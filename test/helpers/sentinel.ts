import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import type { Test } from 'tap'
import { freePort } from './redis-server.js'
import { Processes, info, waitFor } from './cluster.js'

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
  const dir = await mkdtemp(join(tmpdir(), 'redis-sentinel-'))
  const processes = new Processes(t, dir)
  const [masterPort, replicaPort, sentinelPort] = [await freePort(), await freePort(), await freePort()]
  // no 5 s wait before the replica's first sync
  await processes.redis(masterPort, ['--dir', dir, '--repl-diskless-sync-delay', '0'])
  await processes.redis(replicaPort, ['--dir', dir, '--replicaof', '127.0.0.1', String(masterPort)])
  await waitFor('the replica link', async () => (await info(replicaPort, 'INFO', 'replication')).includes('master_link_status:up'))
  const conf = join(dir, 'sentinel.conf')
  // the sentinel rewrites its file, so it must be its own and writable
  await writeFile(conf, [
    `port ${sentinelPort}`,
    'bind 127.0.0.1',
    `dir ${dir}`,
    'sentinel resolve-hostnames no',
    `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${masterPort} 1`,
    `sentinel down-after-milliseconds ${MASTER_NAME} 1000`,
    `sentinel failover-timeout ${MASTER_NAME} 5000`,
    // named up front: discovering it takes the sentinel up to one 10 s INFO period
    `sentinel known-replica ${MASTER_NAME} 127.0.0.1 ${replicaPort}`,
    ''
  ].join('\n'))
  await processes.sentinel(sentinelPort, conf)
  await waitFor('the sentinel to know the replica', async () => {
    const replicas = await info(sentinelPort, 'SENTINEL', 'REPLICAS', MASTER_NAME)
    return replicas.includes(String(replicaPort)) && !/s_down|disconnected/.test(replicas)
  })
  const currentMaster = async (): Promise<number> => {
    const reply = await info(sentinelPort, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER_NAME)
    return Number(reply.split('\n')[1])
  }
  return {
    masterPort,
    replicaPort,
    sentinelPort,
    connect: () => processes.track(new Redis({ sentinels: [{ host: '127.0.0.1', port: sentinelPort }], name: MASTER_NAME, failoverDetector: true, maxRetriesPerRequest: 3 })),
    sentinel: () => processes.track(new Redis({ host: '127.0.0.1', port: sentinelPort, maxRetriesPerRequest: 1 })),
    currentMaster
  }
}
