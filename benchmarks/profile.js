// Summarizes the .cpuprofile files `npm run bench -- --profile` writes: where the server's busy
// samples went, by package and by function, and how much ran inside the plugin (dist/).
// Also usable alone: node benchmarks/profile.js [dir]
import { readdirSync, readFileSync } from 'node:fs'
import { join, basename } from 'node:path'
import { fileURLToPath } from 'node:url'

const IDLE = new Set(['(idle)', '(program)'])

function area (url) {
  if (url === '') return 'V8 / native'
  if (url.startsWith('node:')) return 'Node core'
  if (/\/dist\/.+\.js$/.test(url) && !url.includes('node_modules')) return 'fastify-session-redis'
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg) return pkg[1]
  return 'benchmark app'
}

function frameName (frame) {
  const file = frame.url === '' ? '' : ` ${basename(frame.url)}:${frame.lineNumber + 1}`
  return `${frame.functionName || '(anonymous)'}${file}`
}

function percent (n, total) {
  return `${(100 * n / total).toFixed(1).padStart(5)}%`
}

/** Self and inclusive sample counts by function, and self counts by package, of one profile. */
export function analyse (profile) {
  const byId = new Map(profile.nodes.map(node => [node.id, node]))
  const parent = new Map()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const self = new Map()
  const areas = new Map()
  const inPlugin = new Map()
  let busy = 0
  let plugin = 0
  for (const id of profile.samples) {
    const frame = byId.get(id).callFrame
    if (IDLE.has(frame.functionName)) continue
    busy++
    const name = frameName(frame)
    self.set(name, (self.get(name) ?? 0) + 1)
    const where = frame.functionName === '(garbage collector)' ? 'garbage collector' : area(frame.url)
    areas.set(where, (areas.get(where) ?? 0) + 1)
    // inclusive: every plugin function on this sample's stack, once
    const seen = new Set()
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const f = byId.get(at).callFrame
      if (area(f.url) === 'fastify-session-redis') seen.add(frameName(f))
    }
    if (seen.size > 0) plugin++
    for (const name of seen) inPlugin.set(name, (inPlugin.get(name) ?? 0) + 1)
  }
  return { busy, plugin, self, areas, inPlugin }
}

function top (map, n) {
  return [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, n)
}

export function summarize (dir) {
  const lines = []
  for (const file of readdirSync(dir).filter(f => f.endsWith('.cpuprofile')).sort()) {
    const { busy, plugin, self, areas, inPlugin } = analyse(JSON.parse(readFileSync(join(dir, file), 'utf8')))
    lines.push(`\n## ${file}: ${busy} busy samples; ${percent(plugin, busy)} with plugin code on the stack`)
    lines.push('self time by package:')
    for (const [name, n] of top(areas, 8)) lines.push(`  ${percent(n, busy)}  ${name}`)
    lines.push('self time by function:')
    for (const [name, n] of top(self, 12)) lines.push(`  ${percent(n, busy)}  ${name}`)
    if (inPlugin.size > 0) {
      lines.push('plugin functions, inclusive (callees counted):')
      for (const [name, n] of top(inPlugin, 12)) lines.push(`  ${percent(n, busy)}  ${name}`)
    }
  }
  return lines.join('\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(summarize(process.argv[2] ?? fileURLToPath(new URL('results/profiles/', import.meta.url))))
}
