// The benchmark's private redis-server, and what the bench asks of it.
import { randomBytes } from 'node:crypto'
import { startRedisServer } from '../tools/redis-server.js'

/**
 * A redis-server on a free loopback port, with nothing persisted; killed when this process exits.
 * `wrapper` runs it under another program (taskset, valgrind), which may take longer to start.
 */
export function startRedis (wrapper = []) {
  return startRedisServer({ wrapper })
}

/** INFO as a map of sections' fields. */
export async function info (admin, section) {
  const text = String(await admin.info(section))
  const fields = {}
  for (const line of text.split('\r\n')) {
    const at = line.indexOf(':')
    if (at > 0 && !line.startsWith('#')) fields[line.slice(0, at)] = line.slice(at + 1)
  }
  return fields
}

/** Calls per command since the last CONFIG RESETSTAT, the bench's own INFO/CONFIG left out. */
export async function commandCalls (admin) {
  const stats = await info(admin, 'commandstats')
  const calls = {}
  for (const [name, value] of Object.entries(stats)) {
    const command = name.replace(/^cmdstat_/, '')
    if (/^(info|config|dbsize)/.test(command)) continue
    calls[command] = Number(/calls=(\d+)/.exec(value)[1])
  }
  return calls
}

/** Seconds of CPU the redis-server process has used. */
export async function cpuSeconds (admin) {
  const cpu = await info(admin, 'cpu')
  return Number(cpu.used_cpu_user) + Number(cpu.used_cpu_sys)
}

/** Every key under a prefix (SCAN). */
export async function keysUnder (admin, prefix) {
  const keys = []
  let cursor = '0'
  do {
    const [next, batch] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    keys.push(...batch)
    cursor = next
  } while (cursor !== '0')
  return keys
}

/** Median MEMORY USAGE (bytes, key and value) of up to `sample` of the keys. */
export async function medianMemory (admin, keys, sample = 20) {
  if (keys.length === 0) return null
  const sizes = []
  for (const key of keys.slice(0, sample)) sizes.push(Number(await admin.memory('USAGE', key, 'SAMPLES', '0')))
  sizes.sort((a, b) => a - b)
  return sizes[Math.floor(sizes.length / 2)]
}

// Writes sessions ARGV[1] .. ARGV[2] (ids: a random stem and a zero-padded index) in one call.
const FILL_SCRIPT = `
for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do
  redis.call('SET', ARGV[3] .. ARGV[4] .. string.format('%010d', i), ARGV[5], 'EX', ARGV[6])
end
return 0
`

/**
 * Stores `count` sessions straight into Redis, `batch` per script call (at most `count / batch`
 * round trips), and returns the ids of `sample` of them picked at random.
 */
export async function fill (admin, { prefix, count, value, ttl, sample, batch = 20_000 }) {
  // 33 random characters and a 10-digit index: a 43-character id, like a base64url of 32 bytes
  const stem = randomBytes(25).toString('base64url').slice(0, 33)
  for (let from = 0; from < count; from += batch) {
    await admin.eval(FILL_SCRIPT, 0, from, Math.min(count, from + batch) - 1, prefix, stem, value, ttl)
  }
  const picked = new Set()
  while (picked.size < Math.min(sample, count)) picked.add(Math.floor(Math.random() * count))
  return [...picked].map(i => stem + String(i).padStart(10, '0'))
}
