import { readdir, readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { test } from 'tap'
import { buildApp } from './helpers/app.js'
import { sessionMetrics } from '../examples/metrics.js'

const root = fileURLToPath(new URL('..', import.meta.url))

/** README.md and every Markdown file under docs/: wherever the API tables live. */
async function documentation (): Promise<Array<{ file: string, text: string }>> {
  const files = ['README.md']
  for (const entry of await readdir(join(root, 'docs'), { recursive: true })) {
    if (entry.endsWith('.md')) files.push(join('docs', entry))
  }
  return Promise.all(files.map(async (file) => ({ file, text: await readFile(join(root, file), 'utf8') })))
}

// The counters are read from a running plugin, so a counter added later is checked without
// editing this test.
test('every counter of app.sessions.stats() is in the API table and in examples/metrics.ts', async (t) => {
  const { app } = await buildApp(t, { routes: (app) => { sessionMetrics(app) } })
  const kinds = Object.keys(app.sessions.stats())
  t.ok(kinds.length > 0, 'stats() has counters')

  const rows = (await documentation()).flatMap(({ file, text }) =>
    text.split('\n').filter(line => line.startsWith('| `stats()` |')).map(line => ({ file, line })))
  t.equal(rows.length, 1, 'one table row documents stats()')
  for (const { file, line } of rows) {
    for (const kind of kinds) t.ok(line.includes(`\`${kind}\``), `${file} names \`${kind}\` in the stats() row`)
  }

  const metrics = (await app.inject('/metrics')).body
  for (const kind of kinds) t.ok(metrics.includes(`session_stats_total{kind="${kind}"} `), `examples/metrics.ts reports ${kind}`)
})
