import { createHash } from 'node:crypto'

// Every Lua script the store runs (lib/redis/store.ts sends them, EVALSHA first). Each touches one key,
// so it runs on any node of a Cluster.

export interface Script { lua: string, sha: string }

function script (lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') }
}

// Without rolling: returns the document and its PTTL, leaving the TTL alone. A document past its
// absolute deadline (`liveDocument` in lib/model/expiry.ts) is deleted, not returned.
// Rolling reads use GETEX instead, far cheaper for Redis (docs/performance.md).
// ARGV: now (ms)
export const LOAD_SCRIPT = script(`
local doc = redis.call('GET', KEYS[1])
if not doc then return false end
local a = string.match(doc, '^{"v":%d+,"a":(%d+),')
if a and tonumber(a) <= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return false
end
return {doc, redis.call('PTTL', KEYS[1])}
`)

// Sent on the same connection right behind a rolling read (GETEX … PXAT) that timed out, so that
// Redis runs it after that read, whenever that is (a stall, a resend on reconnecting): the GETEX
// gave the key the configured idle TTL counted from the request, which the document's own TTL,
// its absolute deadline or, for an alias, the grace window may cut short, and the request that would
// have told Redis so has already failed. Sets the expiry those allow a read at the request's time
// (the rule of `keyExpiry` in lib/model/expiry.ts; an alias's own `until`), an instant in the past
// deleting the key; should the read never run, that is what it would have given. Leaves any other
// value alone: the next load discards it.
// A script on every rolling read would do the same without the timeout case, but costs Redis
// several times a GETEX (docs/performance.md); this one runs only after a timeout.
// ARGV: the request's time (ms), configured ttl (ms)
export const LATE_READ_SCRIPT = script(`
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local untilMs = string.match(cur, '^{"moved":"[^"]*","until":(%d+)}$')
if untilMs then
  redis.call('PEXPIREAT', KEYS[1], untilMs)
  return 1
end
local a, t = string.match(cur, '^{"v":%d+,"a":(%d+),"t":(%d+),')
if not a then return 0 end
local at = tonumber(ARGV[1]) + (t == '0' and tonumber(ARGV[2]) or tonumber(t) * 1000)
if tonumber(a) < at then at = tonumber(a) end
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', at))
return 1
`)

// Writes the document only if the stored version is the one the writer started from
// ('0': the key must not exist, so a destroyed session is never written back).
// SET … GET writes and reads the previous value in one call, so the common case costs Redis one
// command; when the check fails, the same atomic step puts the previous value back, with the
// expiry its own metadata gives (the rule of `keyExpiry` in lib/model/expiry.ts, counted from the
// writer's clock, not from when this runs, which may be late; a value that is no session document
// gets this write's), and deletes it once it is past its deadline.
// An alias left by a rotation (lib/model/alias.ts) is put back as it was, to end when it ends.
// Returns 1 when written, 0 when the session is gone, or the stored document (or alias) on a conflict.
// ARGV: expected version, document, 'PX' or 'PXAT', its value (ms), configured ttl (ms), the writer's clock (ms)
export const SAVE_SCRIPT = script(`
local cur = redis.call('SET', KEYS[1], ARGV[2], ARGV[3], ARGV[4], 'GET')
if not cur then
  if ARGV[1] == '0' then return 1 end
  redis.call('DEL', KEYS[1])
  return 0
end
if string.match(cur, '^{"v":(%d+),') == ARGV[1] then return 1 end
local untilMs = string.match(cur, '^{"moved":"[^"]*","until":(%d+)}$')
if untilMs then
  redis.call('SET', KEYS[1], cur, 'PXAT', untilMs)
  return cur
end
local a, t = string.match(cur, '^{"v":%d+,"a":(%d+),"t":(%d+),')
if not a then
  redis.call('SET', KEYS[1], cur, ARGV[3], ARGV[4])
  return cur
end
local now = redis.call('TIME')
if tonumber(a) <= now[1] * 1000 + math.floor(now[2] / 1000) then
  redis.call('DEL', KEYS[1])
  return 0
end
local at = tonumber(ARGV[6]) + (t == '0' and tonumber(ARGV[5]) or tonumber(t) * 1000)
if tonumber(a) < at then at = tonumber(a) end
redis.call('SET', KEYS[1], cur, 'PXAT', string.format('%.0f', at))
return cur
`)

// The second step of a rotation: once the successor is stored, the old key becomes an alias of
// it, but only if it still holds the version the rotation copied. Returns 1 when done, else 0.
// ARGV: expected version, alias, the alias's end (epoch ms: its `until`, even when this runs late)
export const ALIAS_SCRIPT = script(`
local cur = redis.call('GET', KEYS[1])
if not cur or string.match(cur, '^{"v":(%d+),') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
return 1
`)

// Adds a session to a user's sorted set (score: when it joined, epoch ms) and makes the set live at
// least ARGV[3] ms (never shortens it): the set then outlives every session it holds, since none
// outlives its absolute deadline. Returns the set's size.
// ARGV: id, now (ms), ms
export const INDEX_ADD_SCRIPT = script(`
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local want = tonumber(ARGV[3])
if redis.call('PTTL', KEYS[1]) < want then redis.call('PEXPIRE', KEYS[1], want) end
return redis.call('ZCARD', KEYS[1])
`)

// Deletes a session only while its document still names this user (ARGV[1], JSON-encoded) in
// "u", which always follows "c": an index entry gone stale can never log out someone else.
// Returns 1 when it deleted, 2 when the key holds a rotation's alias (lib/model/alias.ts), else 0.
export const INDEX_DESTROY_SCRIPT = script(`
local doc = redis.call('GET', KEYS[1])
if not doc then return 0 end
if string.sub(doc, 1, 10) == '{"moved":"' then return 2 end
local at = string.match(doc, '^{"v":%d+,"a":%d+,"t":%d+,"c":%d+,"u":()')
if not at or string.sub(doc, at, at + #ARGV[1] - 1) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`)
