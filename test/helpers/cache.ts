import { once } from 'node:events'
import { connect as connectTcp, createServer, type AddressInfo, type Socket } from 'node:net'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { Redis } from 'ioredis'
import type { Test } from 'tap'
import type { RedisSessionOptions } from '../../types/index.js'
import { uniquePrefix } from './app.js'
import { redisCli, startRedis, waitFor, type RedisServer } from './redis-server.js'
import { accountApp } from './scale.js'

// Two app instances, A and B, each with its own connection to one private redis-server and the
// local cache on: what one instance's cache may answer after the other wrote.

export const LEASE = 250

export interface CachePair {
  server: RedisServer
  a: FastifyInstance
  b: FastifyInstance
  /** A plain connection of the test's own. */
  redis: Redis
  prefix: string
}

/** A client as an app would make one: ioredis' default retries, its failures seen by the test only. */
export function appClient (t: Test, url: string): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: 1 })
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  return client
}

/** A and B on a redis-server of their own (or `server`), both with the cache (`lease` LEASE unless `session` says), ready to answer. */
export async function cachePair (t: Test, session: Partial<RedisSessionOptions> = {}, server?: RedisServer): Promise<CachePair> {
  if (server === undefined) {
    server = await startRedis()
    const started = server
    t.teardown(() => started.kill())
  }
  const prefix = uniquePrefix()
  const options = { prefix, userKey: 'userId', cache: { lease: LEASE }, ...session }
  const a = await accountApp(t, appClient(t, server.url), options)
  const b = await accountApp(t, appClient(t, server.url), options)
  await Promise.all([answering(a), answering(b)])
  return { server, a, b, redis: appClient(t, server.url), prefix }
}

/** Waits until the app's cache answers reads (tracking on, a PING answered within the lease). */
export async function answering (app: FastifyInstance): Promise<void> {
  // a session of its own, read until a read is a hit
  const created = await app.inject({ method: 'POST', url: '/write', payload: { probe: 1 } })
  const cookie = `sid=${created.cookies.find(c => c.name === 'sid')!.value}`
  await waitFor('the session cache to answer', async () => (await read(app, cookie)).hit)
}

export interface Read {
  res: LightMyRequestResponse
  /** Answered from the cache (the app's hit counter moved; the test sends one request at a time). */
  hit: boolean
}

/** GET /read with `cookie`, telling whether the cache answered it. */
export async function read (app: FastifyInstance, cookie: string): Promise<Read> {
  const before = app.sessions.stats().cacheHits
  const res = await app.inject({ url: '/read', headers: { cookie } })
  return { res, hit: app.sessions.stats().cacheHits > before }
}

/** Reads with `cookie` until the cache answers; returns that answer. */
export async function warm (app: FastifyInstance, cookie: string): Promise<LightMyRequestResponse> {
  let answer: Read | undefined
  await waitFor('a read answered by the cache', async () => {
    answer = await read(app, cookie)
    return answer.hit
  })
  return answer!.res
}

/** Waits for the app to have heard of `count` more invalidations than `before`. */
export async function invalidations (app: FastifyInstance, before: number, count = 1): Promise<void> {
  await waitFor('the invalidation', () => app.sessions.stats().cacheInvalidations >= before + count)
}

/** The CLIENT LIST lines of the connections that track keys (flag t): each cache's data connection. */
export async function trackingClients (port: number): Promise<string[]> {
  const list = await redisCli(port, 'CLIENT', 'LIST')
  return list.split('\n').filter(line => /flags=\S*t/.test(line))
}

/** The CLIENT LIST lines of the connections subscribed to a channel: each cache's invalidation connection. */
export async function invalidationClients (port: number): Promise<string[]> {
  const list = await redisCli(port, 'CLIENT', 'LIST')
  return list.split('\n').filter(line => /\bsub=1\b/.test(line))
}

/** The ids of `lines`, lowest first: the connections of the app registered first come first. */
export function idsOf (lines: string[]): string[] {
  return lines.map(line => /^id=(\d+)/.exec(line)![1]).sort((x, y) => Number(x) - Number(y))
}

/** The id of every tracking connection, for CLIENT KILL ID. */
export async function trackingIds (port: number): Promise<string[]> {
  return idsOf(await trackingClients(port))
}

/** The id of every invalidation connection, for CLIENT KILL ID. */
export async function invalidationIds (port: number): Promise<string[]> {
  return idsOf(await invalidationClients(port))
}

/**
 * A TCP proxy to a redis-server that can hold back, without closing anything, what Redis sends to the
 * connections that subscribed to the invalidations: the invalidation connection stalls silently while
 * the data connection going through the same proxy goes on.
 */
export class TrackingStall {
  #port = 0
  #stalled = false
  readonly #held: Array<() => void> = []

  get port (): number {
    return this.#port
  }

  static async start (t: Test, target: number): Promise<TrackingStall> {
    const sockets = new Set<Socket>()
    const proxy = new TrackingStall()
    const server = createServer((client) => {
      const upstream = connectTcp(target, '127.0.0.1')
      let subscribed = false
      sockets.add(client).add(upstream)
      client.on('data', (data) => {
        if (data.includes('__redis__:invalidate')) subscribed = true
        upstream.write(data)
      })
      upstream.on('data', (data) => {
        if (subscribed && proxy.#stalled) proxy.#held.push(() => { client.write(data) })
        else client.write(data)
      })
      const end = (): void => { client.destroy(); upstream.destroy() }
      client.on('close', end).on('error', end)
      upstream.on('close', end).on('error', end)
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    proxy.#port = (server.address() as AddressInfo).port
    t.teardown(async () => {
      for (const socket of sockets) socket.destroy()
      server.close()
    })
    return proxy
  }

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  stall (): void {
    this.#stalled = true
  }

  /** Delivers what was held back, in order. */
  resume (): void {
    this.#stalled = false
    for (const deliver of this.#held.splice(0)) deliver()
  }
}
