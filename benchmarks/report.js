// Turns a run's measurements into RESULTS.md and a bar chart (hand-written SVG).
import { existsSync, writeFileSync, readFileSync } from 'node:fs'
import { cpus, totalmem, platform, release } from 'node:os'
import { contestants } from './contestants.js'

function median (values) {
  const sorted = values.filter(v => typeof v === 'number' && !Number.isNaN(v)).sort((a, b) => a - b)
  if (sorted.length === 0) return null
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

const FIELDS = ['rps', 'p50', 'p99', 'commands', 'sent', 'setCookie', 'stored', 'bytes', 'appCpuMicros', 'redisCpuMicros', 'failures']

// a --baseline commit runs as baseline-<its first 7 hex digits>, built the first time only
/** The heading from which RESULTS.md is kept by hand (see keptNotes). */
const NOTES = '## Notes on earlier runs'
const SIDE_BY_SIDE = 'npm run bench -- --only hook-ap,plugin-ap,plugin-header,plugin-events --baseline bf451b9 --skip-scale # features and an earlier commit side by side'

/** Median of every field over the rounds of each group of runs. */
export function medians (runs, keyOf) {
  const groups = new Map()
  for (const run of runs) {
    const key = keyOf(run)
    if (!groups.has(key)) groups.set(key, [])
    groups.get(key).push(run)
  }
  const out = new Map()
  for (const [key, list] of groups) {
    const m = { rounds: list.length, rpsAll: list.map(r => r.rps) }
    for (const field of FIELDS) m[field] = median(list.map(r => r[field]))
    m.failures = list.reduce((a, r) => a + r.failures, 0)
    out.set(key, m)
  }
  return out
}

function version (name) {
  try {
    const url = name === 'fastify-session-redis'
      ? new URL('../package.json', import.meta.url)
      : new URL(`node_modules/${name}/package.json`, import.meta.url)
    return JSON.parse(readFileSync(url, 'utf8')).version
  } catch {
    return '?'
  }
}

const fmt = {
  int: (v) => v === null ? '—' : Math.round(v).toLocaleString('en-US'),
  ms: (v) => v === null ? '—' : String(v),
  x: (v) => v === null || !Number.isFinite(v) ? '—' : `${v.toFixed(2)}×`,
  n: (v, digits = 2) => v === null ? '—' : v.toFixed(digits),
  bytes: (v) => v === null ? '—' : v >= 1024 ? `${(v / 1024).toFixed(1)} KiB` : `${v} B`
}

function table (header, rows) {
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map((_, i) => i === 0 ? '---' : '---:').join(' | ')} |`,
    ...rows.map(row => `| ${row.join(' | ')} |`)
  ].join('\n')
}

/** Contestants × scenarios: req/s and the ratio to the plain hook, then lost updates. */
export function summaryTable (main, names, scenarioList, scenarios, correctness) {
  const lost = new Map()
  for (const r of correctness.filter(r => r.processes === 1)) {
    const list = lost.get(r.contestant) ?? []
    list.push(r.lost)
    lost.set(r.contestant, list)
  }
  const header = ['contestant', ...scenarioList.map(s => scenarios[s].label), 'lost updates of 100']
  return table(header, names.map(c => [
    contestants[c].label,
    ...scenarioList.map(s => {
      const m = main.get(`${s}/${c}`)
      const floor = main.get(`${s}/hook`)?.rps ?? null
      return m ? `${fmt.int(m.rps)} (${fmt.x(floor === null ? null : m.rps / floor)})` : '—'
    }),
    lost.has(c) ? range(lost.get(c)) : '—'
  ]))
}

function range (values) {
  const min = Math.min(...values)
  const max = Math.max(...values)
  return min === max ? String(min) : `${min}–${max}`
}

function targetTable (rows, withVariant) {
  const header = ['measure', 'measured (req/s)', 'by CPU', 'target', 'met']
  return table(withVariant ? ['variant', ...header] : header, rows.map(t => [
    ...(withVariant ? [contestants[t.ours].short] : []),
    t.what + (t.note ? ` (${t.note})` : ''),
    t.exact ? fmt.n(t.value) : fmt.x(t.value),
    t.exact ? '' : fmt.x(t.byCpu ?? null),
    t.exact ? `${t.goal}` : `≥ ${t.goal}×`,
    t.met === null ? '—' : t.met ? 'yes' : '**no**'
  ]))
}

/**
 * The median over rounds of one ratio taken within each round. Within a round, every contestant's
 * run is measured in short slices taken in turn, so a slow spell of the machine falls on all of
 * them alike; a burst that still tips one round moves that round's ratio, not a whole median.
 */
function roundRatio (runs, scenario, ours, other, ratio) {
  const byRound = (contestant) => new Map(runs.filter(r => r.scenario === scenario && r.contestant === contestant).map(r => [r.round, r]))
  const mine = byRound(ours)
  const theirs = byRound(other)
  return median([...mine].filter(([round]) => theirs.has(round)).map(([round, run]) => ratio(run, theirs.get(round))))
}

const rpsRatio = (mine, theirs) => mine.rps / theirs.rps
// the same comparison by CPU (server process + redis-server) per request: less at the mercy of the scheduler
const cpuRatio = (mine, theirs) => (theirs.appCpuMicros + theirs.redisCpuMicros) / (mine.appCpuMicros + mine.redisCpuMicros)

/** The ratios the project holds itself to, each with its measured value. */
export function targets (runs, main, names) {
  const get = (scenario, contestant) => main.get(`${scenario}/${contestant}`)?.rps ?? null
  const bestPeer = (scenario) => {
    let best = null
    for (const c of names.filter(n => contestants[n].kind === 'peer')) {
      const rps = get(scenario, c)
      if (rps !== null && (best === null || rps > best.rps)) best = { rps, contestant: c }
    }
    return best
  }
  const fasterFloor = (scenario) => (get(scenario, 'hook') ?? 0) >= (get(scenario, 'hook-ap') ?? 0) ? 'hook' : 'hook-ap'
  const rows = []
  const adder = (ours) => (scenario, what, other, goal, note = '') => {
    const value = other === null || !names.includes(other) ? null : roundRatio(runs, scenario, ours, other, rpsRatio)
    const byCpu = value === null ? null : roundRatio(runs, scenario, ours, other, cpuRatio)
    rows.push({ ours, what, value, goal, met: value === null ? null : value >= goal, note, byCpu })
  }
  for (const ours of ['plugin-ap', 'plugin'].filter(c => names.includes(c))) {
    const add = adder(ours)
    const readPeer = bestPeer('read')?.contestant ?? null
    const writePeer = bestPeer('write')?.contestant ?? null
    const writeFloor = fasterFloor('write')
    add('read', 'read ÷ auto-pipelined floor', 'hook-ap', 0.95)
    add('read', 'read ÷ best peer', readPeer, 1.7, readPeer ? contestants[readPeer].short : '')
    add('write', 'write ÷ faster floor', writeFloor, 0.9, contestants[writeFloor].short)
    add('write', 'write ÷ best peer', writePeer, 1.3, writePeer ? contestants[writePeer].short : '')
    add('untouched', 'no cookie, untouched ÷ Fastify', 'fastify', 0.9)
    if (ours === 'plugin-ap' && names.includes('plugin-set')) {
      add('write', 'write ÷ the same save as a plain SET EX', 'plugin-set', 0.95, 'the cost of the no-lost-updates guarantee')
    }
    if (ours === 'plugin-ap' && names.includes('plugin-unhashed')) {
      add('read', 'read ÷ the same with hashIds: false', 'plugin-unhashed', 0.95, 'the cost of hashing ids at rest')
      add('write', 'write ÷ the same with hashIds: false', 'plugin-unhashed', 0.95, 'the cost of hashing ids at rest')
    }
    const commands = main.get(`untouched/${ours}`)?.commands ?? null
    rows.push({ ours, what: 'no cookie, untouched: Redis commands/request', value: commands, goal: 0, met: commands === null ? null : commands === 0, exact: true })
  }
  // the local cache: reads near bare Fastify, writes as without it (docs/local-cache.md)
  if (names.includes('plugin-cache')) {
    const add = adder('plugin-cache')
    add('read', 'read ÷ Fastify', 'fastify', 0.8)
    add('read', 'read ÷ Fastify sent the same cookies', 'fastify-cookie', 0.8, 'the same requests: a Cookie header costs the HTTP parser and the load generator too')
    add('read', 'read ÷ the plugin without cache', 'plugin-ap', 1.5)
    add('write', 'write ÷ the plugin without cache', 'plugin-ap', 0.95)
  }
  return rows
}

function svgChart (main, names, scenarioList, scenarios) {
  const shades = {
    ours: ['#1b5e20', '#43a047', '#81c784'],
    variant: ['#f9a825', '#ef6c00', '#ffd54f', '#a1887f', '#ff8f00'],
    baseline: ['#6a1b9a', '#ab47bc', '#ce93d8'],
    floor: ['#455a64', '#90a4ae'],
    peer: ['#b71c1c', '#e57373', '#ffab91'],
    ceiling: ['#9e9e9e', '#cfcfcf']
  }
  const used = {}
  const color = {}
  for (const c of names) {
    const kind = contestants[c].kind
    const i = used[kind] ?? 0
    used[kind] = i + 1
    color[c] = shades[kind][i % shades[kind].length]
  }
  const max = Math.max(...[...main.values()].map(m => m.rps ?? 0), 1)
  const bar = 14
  const gap = 26
  const left = 220
  const width = 940
  const groupHeight = names.length * bar + gap
  const legendHeight = names.length * 18 + 20
  const height = 40 + scenarioList.length * groupHeight + legendHeight
  const scale = (width - left - 80) / max
  const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;')
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">Requests per second (median of rounds; higher is better)</text>`
  ]
  scenarioList.forEach((scenario, g) => {
    const top = 40 + g * groupHeight
    parts.push(`<text x="${left - 10}" y="${top + (names.length * bar) / 2 + 4}" text-anchor="end" font-weight="bold">${esc(scenarios[scenario].label)}</text>`)
    names.forEach((c, i) => {
      const m = main.get(`${scenario}/${c}`)
      if (!m) return
      const y = top + i * bar
      const w = Math.max(1, m.rps * scale)
      parts.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${bar - 2}" fill="${color[c]}"/>`)
      parts.push(`<text x="${(left + w + 4).toFixed(1)}" y="${y + bar - 4}" font-size="10">${fmt.int(m.rps)}</text>`)
    })
  })
  const legendTop = 40 + scenarioList.length * groupHeight
  names.forEach((c, i) => {
    const y = legendTop + i * 18
    parts.push(`<rect x="${left}" y="${y}" width="12" height="12" fill="${color[c]}"/>`)
    parts.push(`<text x="${left + 18}" y="${y + 10}">${esc(contestants[c].label)}</text>`)
  })
  parts.push('</svg>')
  return parts.join('\n') + '\n'
}

/** Each variant and baseline ÷ plugin-ap, per scenario: what a feature or a commit changes. */
function againstPlugin (runs, names, scenarioList, scenarios) {
  const others = names.filter(c => ['variant', 'baseline'].includes(contestants[c].kind))
  if (!names.includes('plugin-ap') || others.length === 0) return null
  return table(['contestant', ...scenarioList.map(s => scenarios[s].label)], others.map(c => [
    contestants[c].label,
    ...scenarioList.map(s => {
      const rps = roundRatio(runs, s, c, 'plugin-ap', rpsRatio)
      return rps === null ? '—' : `${fmt.x(rps)} (by CPU ${fmt.x(roundRatio(runs, s, c, 'plugin-ap', cpuRatio))})`
    })
  ]))
}

export function machine () {
  const cpu = cpus()
  return `${cpu.length} × ${cpu[0]?.model.trim() ?? 'CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ${platform()} ${release()}`
}

/** Writes RESULTS.md and results.svg into `dir`; returns their URLs. */
export function writeReport (results, dir, scenarios) {
  const { opts, names } = results
  const scenarioList = Object.keys(scenarios).filter(s => results.main.some(r => r.scenario === s))
  const main = medians(results.main, r => `${r.scenario}/${r.contestant}`)
  const out = []
  out.push('# Benchmark results', '')
  out.push(`Measured ${results.startedAt.slice(0, 16).replace('T', ' ')} UTC by \`npm run bench${opts.quick ? ' -- --quick' : ''}\` in ${Math.round(results.seconds)} s.`)
  out.push(`Machine: ${machine()}; Node.js ${process.version}; redis-server ${results.redisVersion}. ` +
    `Load average (1 min) ${loadNote(results)}.`)
  out.push(`Load: autocannon ${version('autocannon')}, ${opts.connections} connections, ${opts.duration} s per run after ${opts.warmup} s of warm-up, ` +
    `measured in ${sliceNote(opts)}, ` +
    `${opts.rounds} interleaved round(s), median shown. A fresh server process per contestant in every round, warmed up before it is measured; ` +
    `${placementNote(results)}; loopback only.`)
  out.push('', 'Versions: ' + ['fastify-session-redis', 'fastify', 'ioredis', '@fastify/cookie', '@fastify/session', 'connect-redis',
    'fastify-session-redis-store', '@mgcrea/fastify-session', '@mgcrea/fastify-session-redis-store'].map(n => `${n} ${version(n)}`).join(', ') + '.')
  out.push('', '![Requests per second by scenario](results.svg)', '')
  if (scenarioList.length > 0) {
    out.push('## Summary: req/s (× the hand-written hook without auto-pipelining)', '')
    out.push(summaryTable(main, names, scenarioList, scenarios, results.correctness), '')
  }

  if (scenarioList.length > 0) {
    out.push('## Targets', '')
    out.push(targetTable(targets(results.main, main, names), true), '')
    out.push('Each ratio is the median over the rounds of the ratio within a round, where the runs take turns (see Load above). ' +
      '**by CPU**: the same ratio computed from CPU time per request (server process + redis-server) instead of ' +
      'requests per second: how much work each contestant costs, whatever else the machine is doing.', '')
    const variants = againstPlugin(results.main, names, scenarioList, scenarios)
    if (variants !== null) {
      out.push('## Variants and earlier commits ÷ fastify-session-redis + auto-pipelining', '')
      out.push(variants, '', 'Medians over the rounds of the ratio within a round, as for the targets; below 1.00× costs more than plugin-ap.', '')
    }
  }

  for (const scenario of scenarioList) {
    const floor = main.get(`${scenario}/hook`)?.rps ?? null
    out.push(`## ${scenarios[scenario].label}`, '')
    out.push(table(['contestant', 'req/s', '× hook', 'p50 ms', 'p99 ms', 'Redis cmds/req', 'sent/req', 'Set-Cookie/resp', 'sessions stored/req', 'app CPU µs/req', 'Redis CPU µs/req'],
      names.filter(c => main.has(`${scenario}/${c}`)).map(c => {
        const m = main.get(`${scenario}/${c}`)
        return [
          contestants[c].label + (m.failures > 0 ? ` (**${m.failures} failed requests**)` : ''),
          fmt.int(m.rps), fmt.x(floor === null ? null : m.rps / floor), fmt.ms(m.p50), fmt.ms(m.p99),
          fmt.n(m.commands), fmt.n(m.sent), fmt.n(m.setCookie), fmt.n(m.stored),
          fmt.int(m.appCpuMicros), fmt.n(m.redisCpuMicros, 1)
        ]
      })), '')
  }
  if (scenarioList.length > 0) {
    out.push('Columns: **Redis cmds/req** counts every command Redis ran (INFO commandstats after CONFIG RESETSTAT; ' +
      'commands a Lua script runs count too), **sent/req** the commands the app sent (its round trips, pipelined or not); ' +
      '**Set-Cookie/resp** the session cookies (or id headers) set per response; **sessions stored/req** how many keys the run added to Redis, ' +
      'per request; CPU columns: the server process and the redis-server process, per request.', '')
  }

  if (results.memory.length > 0) {
    const sizes = [...new Set(results.memory.map(m => m.dataBytes))]
    out.push('## Bytes Redis uses per session', '')
    out.push('MEMORY USAGE (key and value, median of 20 sessions) of a session holding a counter and the given bytes of data, made through each contestant\'s own routes.', '')
    out.push(table(['contestant', ...sizes.map(b => b === 0 ? 'a counter' : `a counter and ${typeof b === 'string' ? `an ${b}` : fmt.bytes(b)}`)],
      [...new Set(results.memory.map(m => m.contestant))].map(c => [contestants[c].label,
        ...sizes.map(b => fmt.bytes(results.memory.find(m => m.contestant === c && m.dataBytes === b)?.bytes ?? null))])), '')
  }

  if (results.correctness.length > 0) {
    out.push('## Lost updates: 100 parallel `counter += 1` on one session', '')
    const groups = new Map()
    for (const r of results.correctness) {
      const key = `${r.contestant}/${r.processes}`
      if (!groups.has(key)) groups.set(key, [])
      groups.get(key).push(r)
    }
    out.push(table(['contestant', 'final counter (per round)', 'lost updates', 'failed requests'], [...groups.values()].map(list => {
      const { contestant, processes } = list[0]
      return [
        contestants[contestant].label + (processes > 1 ? `, ${processes} server processes` : ''),
        list.map(r => r.final).join(', '),
        range(list.map(r => r.lost)),
        list.map(r => r.failed).join(', ')
      ]
    })), '')
    out.push('Every peer and the hook read, add one and write back; fastify-session-redis uses `session.increment()`.', '')
  }

  if (results.scale.length > 0) {
    const scale = medians(results.scale, r => `${r.sessions}/${r.dataBytes}/${r.contestant}/${r.scenario}`)
    const rows = [...new Set(results.scale.map(r => `${r.sessions}/${r.dataBytes}/${r.contestant}`))]
    out.push('## Scale: sessions stored and session size', '')
    out.push('Sessions written straight into Redis by a loader script (each contestant under its own prefix, so Redis ' +
      'holds twice the count), then read or changed through 1,000 of them picked at random, each connection using its own share.', '')
    out.push(table(['sessions stored', 'data per session', 'contestant', 'read req/s', 'read p99 ms', 'write req/s', 'write p99 ms', 'bytes/session'],
      rows.map(row => {
        const [sessions, dataBytes, contestant] = row.split('/')
        const read = scale.get(`${row}/read`)
        const write = scale.get(`${row}/write`)
        return [fmt.int(Number(sessions)), fmt.bytes(Number(dataBytes)), contestants[contestant].short,
          fmt.int(read?.rps ?? null), fmt.ms(read?.p99 ?? null), fmt.int(write?.rps ?? null), fmt.ms(write?.p99 ?? null),
          fmt.bytes(read?.bytes ?? null)]
      })), '')
  }

  out.push('## Reproduce', '', '```sh', 'npm run bench            # the full run (about 30 minutes), rewrites this file and results.svg',
    'npm run bench -- --quick # a smoke run, written to benchmarks/results/', 'npm run bench -- --profile --only plugin-ap,hook-ap # CPU profiles and where the time went',
    SIDE_BY_SIDE,
    '```', '', 'Settings: every contestant uses a 1-day idle TTL; peers run with their defaults except `cookie.secure: false` ' +
    '(@fastify/session; plain HTTP) and `cookie.maxAge` (@mgcrea, as in its README), so with their default `saveUninitialized: true` ' +
    'they store a session for every cookie-less visitor; fastify-session-redis runs with its defaults plus `maxBytes: 1 MiB` (for the 64 KB sessions).', '')
  const md = new URL('RESULTS.md', dir)
  const svg = new URL('results.svg', dir)
  const snippet = new URL('results/performance-section.md', import.meta.url)
  writeFileSync(md, out.join('\n') + keptNotes(md))
  writeFileSync(svg, svgChart(main, names, scenarioList, scenarios))
  writeFileSync(snippet, performanceSection(results, main, scenarioList, scenarios))
  return [md, svg, snippet]
}

function placementNote ({ pinned }) {
  return pinned
    ? 'each app server pinned to CPU 0, the load generator and Redis to the other CPU, with taskset'
    : 'the app server, Redis and the load generator placed by the scheduler'
}

function loadNote ({ loadavg }) {
  if (!loadavg) return 'not recorded'
  return `${loadavg.start.toFixed(1)} at the start, ${loadavg.end.toFixed(1)} at the end`
}

/** How each run was cut up (old results have no `slices`: one piece). */
function sliceNote (opts) {
  const slices = opts.slices ?? 1
  return slices === 1 ? 'one piece' : `${slices} slices of ${opts.duration / slices} s taken in turn with the other contestants`
}

/** The hand-kept part of a RESULTS.md, from its notes heading to the end: a run rewrites the rest. */
function keptNotes (md) {
  if (!existsSync(md)) return ''
  const text = readFileSync(md, 'utf8')
  const at = text.indexOf(`\n${NOTES}\n`)
  return at === -1 ? '' : text.slice(at)
}

/** docs/performance.md's "The current figures", from the same run. */
function performanceSection (results, main, scenarioList, scenarios) {
  const { opts, names } = results
  const out = []
  out.push(`Measured ${results.startedAt.slice(0, 10)} with \`npm run bench\` on ${machine()}, Node.js ${process.version}, ` +
    `redis-server ${results.redisVersion}, fastify ${version('fastify')}, ioredis ${version('ioredis')} ` +
    `(load average ${loadNote(results)}; ${placementNote(results)}). ` +
    `autocannon, ${opts.connections} connections, ${opts.duration} s runs in ${sliceNote(opts)}, ${opts.rounds} interleaved rounds, medians. ` +
    'Every contestant serves the same routes; 1.00× is a hand-written hook doing the least a Redis session can ' +
    '(a signed cookie, one `GETEX` to read, one `SET EX` to write, no expiry bookkeeping, no concurrency control).', '')
  out.push('![Requests per second by scenario](../benchmarks/results.svg)', '')
  out.push(summaryTable(main, names, scenarioList, scenarios, results.correctness), '')
  out.push(targetTable(targets(results.main, main, names).filter(t => t.ours === 'plugin-ap'), false), '')
  out.push('Each ratio is the median over the rounds of the ratio measured within a round, where the runs take turns. ' +
    '**by CPU** is the same ratio computed from CPU time per request (server process plus redis-server), which the ' +
    'other work on the machine disturbs less than requests per second do.', '')
  out.push('Redis commands, Set-Cookie headers, CPU per request, bytes per session and the 1k/100k/1M-session and ' +
    '100 B/4 KB/64 KB scale runs are in [benchmarks/RESULTS.md](../benchmarks/RESULTS.md). To reproduce (needs Node.js and ' +
    '`redis-server`; installs the peers into `benchmarks/` only and starts its own Redis on a free loopback port):', '')
  out.push('```sh', 'npm run bench            # about 30 minutes; rewrites benchmarks/RESULTS.md and results.svg',
    'npm run bench -- --quick # a one-round smoke run', SIDE_BY_SIDE, '```', '')
  return out.join('\n')
}
