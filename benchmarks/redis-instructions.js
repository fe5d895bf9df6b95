// Counts the instructions redis-server spends on each command the plugin sends, by running it under
// valgrind's callgrind. Unlike time, an instruction count does not move with whatever else the
// machine is doing, so a change to a script can be judged on a noisy machine.
// Needs valgrind (apt-get install valgrind) and a built plugin (npm run build).
// Usage: node benchmarks/redis-instructions.js [commands per case, default 20000]
import { readFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { Redis } from 'ioredis'
import { startRedis } from './redis.js'
import { LOAD_SCRIPT, SAVE_SCRIPT } from '../dist/redis/scripts.js'
import { newDocument, serializeDocument } from '../dist/model/document.js'

const COUNT = Number(process.argv[2] ?? 20_000)
const BATCH = 100
const TTL = 3600
const KEY = 'sess:instructions'

// a session like the benchmark's: version 1, a user and a counter
const doc = newDocument(Date.now(), 7 * 24 * 3600)
doc.v = 1
doc.d = { user: 'someone@example.com', n: 41 }
const DOCUMENT = serializeDocument(doc)

/** What each case sends, COUNT times; the stored document stays version 1 throughout. */
const cases = {
  'nothing (start, connect, stop)': undefined,
  'SET … EX (a plain save)': (c) => c.set(KEY, DOCUMENT, 'EX', TTL),
  'GETEX … EX (a rolling load)': (c) => c.getex(KEY, 'EX', TTL),
  'save script, no conflict': (c) => c.evalsha(SAVE_SCRIPT.sha, 1, KEY, 1, DOCUMENT, TTL, TTL),
  'save script, conflict (the stored version is put back)': (c) => c.evalsha(SAVE_SCRIPT.sha, 1, KEY, 5, DOCUMENT, TTL, TTL),
  'load script (rolling: false)': (c) => c.evalsha(LOAD_SCRIPT.sha, 1, KEY, Date.now())
}

async function instructions (send, dir, n) {
  const out = join(dir, `callgrind.${n}.out`)
  const server = await startRedis(['valgrind', '--tool=callgrind', `--callgrind-out-file=${out}`])
  const client = new Redis(server.url, { lazyConnect: true })
  await client.connect()
  await client.script('LOAD', SAVE_SCRIPT.lua)
  await client.script('LOAD', LOAD_SCRIPT.lua)
  await client.set(KEY, DOCUMENT, 'EX', TTL)
  if (send !== undefined) {
    for (let sent = 0; sent < COUNT; sent += BATCH) {
      await Promise.all(Array.from({ length: Math.min(BATCH, COUNT - sent) }, () => send(client)))
    }
    if (await client.get(KEY) !== DOCUMENT) throw new Error('the stored document changed')
  }
  await client.quit()
  await server.stop()
  const totals = /^(?:summary|totals): (\d+)/m.exec(readFileSync(out, 'utf8'))
  return Number(totals[1])
}

if (spawnSync('valgrind', ['--version']).status !== 0) {
  console.error('valgrind is not installed (apt-get install valgrind)')
  process.exit(1)
}
const dir = mkdtempSync(join(tmpdir(), 'redis-instructions-'))
try {
  const version = spawnSync('redis-server', ['--version']).stdout.toString().trim()
  console.log(`${version}\n${COUNT} commands per case; document of ${DOCUMENT.length} bytes\n`)
  console.log('| command | instructions per call | × SET |\n| --- | ---: | ---: |')
  let base
  let set
  let n = 0
  for (const [name, send] of Object.entries(cases)) {
    const total = await instructions(send, dir, n++)
    if (send === undefined) {
      base = total
      continue
    }
    const perCall = (total - base) / COUNT
    set ??= perCall
    console.log(`| ${name} | ${Math.round(perCall).toLocaleString('en-US')} | ${(perCall / set).toFixed(2)}× |`)
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
