import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import type { Test } from 'tap'

/** One command as Redis's MONITOR reported it. */
export interface SeenCommand {
  /** The command name, lower case (`evalsha`, `get`, …). */
  name: string
  args: string[]
  /** `ip:port` of the connection that sent it, or `lua` for a command a script ran. */
  source: string
}

export interface CommandMonitor {
  /**
   * Every command Redis ran since the previous `take()` (or since the monitor started), in order.
   * Before answering it waits for a marker sent after the call, so nothing Redis ran before the
   * call is missing. The monitor's own markers are left out.
   */
  take (): Promise<SeenCommand[]>
  /** `take()`, keeping only what `client` sent itself: one entry per command it sent, not those its scripts ran. */
  takeFrom (client: Redis): Promise<SeenCommand[]>
}

const SYNC_TIMEOUT = 5000

/** `ip:port` of a client's connection, as MONITOR names it (read from the socket: no command is sent). */
export function sourceOf (client: Redis): string {
  const { localAddress, localPort } = client.stream as { localAddress?: string, localPort?: number }
  if (localAddress === undefined || localPort === undefined) throw new Error('the client is not connected')
  return `${localAddress}:${localPort}`
}

const QUEUE_STATE_ERROR = 'Command queue state error'

/**
 * A connection in MONITOR mode, ready when this resolves. ioredis's own `monitor()` enters the mode
 * one tick after Redis's `OK`: a command another client sends in that gap arrives in the same read
 * and reaches ioredis as a reply nobody asked for, an error it emits (and throws, once its listener
 * is gone). That command ran before monitoring began, so it is dropped here. Any other error
 * fails the start; a connection lost later shows as a sync marker that never arrives.
 */
async function startWatcher (url: string): Promise<Redis> {
  const watcher = new Redis(url, { monitor: true, maxRetriesPerRequest: 1, lazyConnect: true })
  const monitoring = new Promise<void>((resolve, reject) => {
    // the listener stays: without one, ioredis would throw the errors it emits; once monitoring
    // has begun, a rejection is a no-op
    watcher.on('error', (err: Error) => {
      if (!err.message.startsWith(QUEUE_STATE_ERROR)) reject(err)
    })
    watcher.once('monitoring', resolve)
  })
  try {
    await watcher.connect()
    await monitoring
  } catch (err) {
    watcher.disconnect()
    throw err
  }
  return watcher
}

/** Watches every command a Redis server runs (MONITOR); closed at teardown. */
export async function monitorRedis (t: Test, url: string): Promise<CommandMonitor> {
  const marker = new Redis(url, { maxRetriesPerRequest: 1 })
  t.teardown(() => marker.disconnect())
  const watcher = await startWatcher(url)
  t.teardown(() => watcher.disconnect())
  const token = `monitor-sync:${randomBytes(6).toString('hex')}:`
  let seen: SeenCommand[] = []
  let waiting: { marker: string, done: () => void } | undefined
  watcher.on('monitor', (_time: string, args: string[], source: string) => {
    const [name = '', ...rest] = args
    if (name.toLowerCase() === 'echo' && rest[0]?.startsWith(token) === true) {
      if (waiting !== undefined && rest[0] === waiting.marker) waiting.done()
      return
    }
    seen.push({ name: name.toLowerCase(), args: rest, source })
  })

  let count = 0
  async function take (): Promise<SeenCommand[]> {
    const mark = token + String(count++)
    const arrived = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`MONITOR did not report the sync marker within ${SYNC_TIMEOUT} ms`)), SYNC_TIMEOUT)
      waiting = { marker: mark, done: () => { clearTimeout(timer); resolve() } }
    })
    await marker.echo(mark)
    await arrived
    waiting = undefined
    const taken = seen
    seen = []
    return taken
  }

  return {
    take,
    async takeFrom (client) {
      const source = sourceOf(client)
      return (await take()).filter(command => command.source === source)
    }
  }
}
