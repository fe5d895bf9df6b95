import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))
const START_TIMEOUT_MS = 15_000
const STOP_TIMEOUT_MS = 8_000

/** The demo app running as a child process, as `npm run demo` runs it. */
export interface DemoProcess {
  readonly url: string
  /** The process the test started: the demo itself, or the shell running it. */
  readonly pid: number
  /** Everything it printed so far (stdout and stderr). */
  output (): string
  /** Sends `signal` and resolves with the exit code; SIGKILL when it does not exit in time. */
  stop (signal?: NodeJS.Signals): Promise<number | null>
}

export interface DemoOptions {
  /** The Redis it uses; without one it starts a private redis-server (DEMO_REDIS=private). */
  redisUrl?: string
  /** Runs it under a shell, as npm does (`sh -c 'npm run build && node …'`): the shell is its parent. */
  shell?: boolean
}

const running = new Set<ChildProcess>()
process.once('exit', () => { for (const child of running) child.kill('SIGKILL') })

/** Starts examples/demo/server.js (from the built dist/) on a port of its own. */
export async function startDemo ({ redisUrl, shell = false }: DemoOptions = {}): Promise<DemoProcess> {
  if (!existsSync(join(root, 'dist', 'index.js'))) throw new Error('dist/index.js is missing: run npm run build first')
  const { REDIS_URL: _ignored, ...inherited } = process.env
  // tap follows child processes for coverage; the demo is an example, not part of the library's coverage.
  // PORT=0: the demo listens on a port the system picks, which no other process can take meanwhile
  const env = { ...inherited, _TAPJS_PROCESSINFO_COVERAGE_: '0', PORT: '0', LOG_LEVEL: 'warn' }
  const [command, args] = shell
    // `:` first, so that the shell waits for node rather than becoming it (as with npm's `&&`)
    ? ['sh', ['-c', `: && "${process.execPath}" examples/demo/server.js`]]
    : [process.execPath, ['examples/demo/server.js']]
  const child = spawn(command, args, {
    cwd: root,
    env: redisUrl === undefined ? { ...env, DEMO_REDIS: 'private' } : { ...env, REDIS_URL: redisUrl },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  running.add(child)
  let output = ''
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const exited = new Promise<number | null>(resolve => child.once('exit', (code) => {
    running.delete(child)
    resolve(code)
  }))

  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the demo printed no "listening" line within ${START_TIMEOUT_MS} ms:\n${output}`)), START_TIMEOUT_MS)
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      const match = /listening on (http:\/\/\S+)/.exec(output)
      if (match !== null) {
        clearTimeout(timer)
        resolve(match[1])
      }
    })
    exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`the demo exited with ${code} before listening:\n${output}`))
    }, reject)
  }).catch(async (err: Error) => {
    child.kill('SIGKILL')
    await exited
    throw err
  })

  return {
    url,
    pid: child.pid!,
    output: () => output,
    async stop (signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
      child.kill(signal)
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
      const code = await exited
      clearTimeout(timer)
      return code
    }
  }
}

/** The `chromium` executable: CHROMIUM_PATH, else the first one on PATH; undefined when there is none. */
export function findChromium (): string | undefined {
  const given = process.env.CHROMIUM_PATH
  if (given !== undefined && given !== '') return existsSync(given) ? given : undefined
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, 'chromium')
    if (dir !== '' && existsSync(candidate)) return candidate
  }
  return undefined
}
