import type { Redis } from 'ioredis'
import { keysUnder } from './app.js'

// Makes `ms` pass for the sessions stored under a prefix without waiting: the stored state is moved
// back in time instead of the clocks forward. The plugin reads Date.now(), Redis keeps real TTLs and
// the save script reads Redis TIME, so moving any one clock would leave the others behind; moving
// the state keeps all three agreeing. Every timestamp the storage format holds (docs/design.md
// "Storage format": a session's "a" and "c", an alias's "until", the join times scoring a user's
// index) and every key's remaining PTTL go down by `ms`; a key whose PTTL runs out is deleted, as
// Redis would have expired it. One script per key: the PTTL read and the PEXPIRE happen at the same
// instant of Redis's clock, so no millisecond is gained or lost.
const SHIFT = `
local ms = tonumber(ARGV[1])
local pttl = redis.call('PTTL', KEYS[1])
if pttl == -2 then return 0 end
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'zset' then
  local flat = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  for i = 1, #flat, 2 do
    redis.call('ZADD', KEYS[1], 'XX', string.format('%.0f', tonumber(flat[i + 1]) - ms), flat[i])
  end
elseif kind == 'string' then
  local text = redis.call('GET', KEYS[1])
  local v, a, t, c, rest = string.match(text, '^{"v":(%d+),"a":(%d+),"t":(%d+),"c":(%d+)(.*)$')
  if v then
    text = '{"v":' .. v .. ',"a":' .. string.format('%.0f', tonumber(a) - ms) .. ',"t":' .. t ..
      ',"c":' .. string.format('%.0f', tonumber(c) - ms) .. rest
  else
    local sealed, untilMs = string.match(text, '^{"moved":"([^"]*)","until":(%d+)}$')
    if sealed then text = '{"moved":"' .. sealed .. '","until":' .. string.format('%.0f', tonumber(untilMs) - ms) .. '}' end
  end
  redis.call('SET', KEYS[1], text, 'KEEPTTL')
end
if pttl >= 0 then
  if pttl <= ms then
    redis.call('DEL', KEYS[1])
    return 2
  end
  redis.call('PEXPIRE', KEYS[1], pttl - ms)
end
return 1
`

/** What `travel` did to the keys it found. */
export interface Travelled { shifted: number, expired: number }

/**
 * Lets `ms` milliseconds pass for everything stored under `prefix` (sessions, aliases, user indexes):
 * timestamps and TTLs move back by `ms`, and keys that would have expired meanwhile are deleted.
 * Run it while no request is in flight.
 */
export async function travel (client: Redis, prefix: string, ms: number): Promise<Travelled> {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new Error(`travel takes a whole number of ms, not ${ms}`)
  const result: Travelled = { shifted: 0, expired: 0 }
  for (const key of await keysUnder(client, prefix)) {
    const outcome = await client.eval(SHIFT, 1, key, ms)
    if (outcome === 1) result.shifted++
    else if (outcome === 2) result.expired++
  }
  return result
}
