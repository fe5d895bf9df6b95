// Augmenting SessionData changes it for every file compiled in the same program, so each
// augmentation gets a compiler run of its own here: the tsd files under types/augmented/ (the plain
// `tsd` run covers types/**/*.ts, where SessionData stays empty) and the typed example app.
import t from 'tap'
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const tsd = fileURLToPath(new URL('../node_modules/tsd/dist/cli.js', import.meta.url))
const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url))

// tsd type-checks every declaration file it loads: a run takes many seconds of CPU
t.setTimeout(10 * 60_000)

function compile (args: string[]): Promise<{ code: number | null, output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: root }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : (err.code as number | null), output: stdout + stderr })
    })
  })
}

const runs: Record<string, string[]> = {
  'SessionData augmented with members and a TypeBox schema': [tsd, '--files', 'types/augmented/session-data.test-d.mts'],
  'SessionData augmented with an index signature': [tsd, '--files', 'types/augmented/open-keys.test-d.mts'],
  'the typed example app': [tsc, '-p', 'examples/tsconfig.json']
}

// all started at once: they are independent, and mostly CPU-bound
for (const [name, run] of Object.entries(runs).map(([name, args]) => [name, compile(args)] as const)) {
  t.test(name, async (t) => {
    const { code, output } = await run
    t.equal(code, 0, output)
  })
}
