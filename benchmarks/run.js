// `npm run bench`: installs what the benchmark needs, builds the plugin when dist/ is missing or
// older than lib/, then runs bench.js. Needs only Node.js and redis-server on the PATH.
import { existsSync, readdirSync, statSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'

const here = fileURLToPath(new URL('.', import.meta.url))
const root = join(here, '..')

function sh (args, cwd) {
  console.log(`> ${args.join(' ')}   (in ${cwd})`)
  const { status } = spawnSync(args[0], args.slice(1), { cwd, stdio: 'inherit' })
  if (status !== 0) throw new Error(`${args.join(' ')} exited with ${status}`)
}

function newestSource () {
  const lib = join(root, 'lib')
  return Math.max(...readdirSync(lib).map(f => statSync(join(lib, f)).mtimeMs))
}

if (spawnSync('redis-server', ['--version']).status !== 0) {
  console.error('redis-server is not on the PATH: install it (for example `apt-get install redis-server`) and run again')
  process.exit(1)
}
// npm install, not npm ci: the root lockfile cannot list other platforms' optional eslint
// bindings, which the registry this machine reaches does not serve, so npm ci refuses it
if (!existsSync(join(root, 'node_modules', '.package-lock.json'))) sh(['npm', 'install', '--no-audit', '--no-fund'], root)
if (!existsSync(join(here, 'node_modules', '.package-lock.json'))) sh(['npm', 'ci', '--no-audit', '--no-fund'], here)
const built = join(root, 'dist', 'index.js')
if (!existsSync(built) || statSync(built).mtimeMs < newestSource()) {
  try {
    sh(['npm', 'run', 'build'], root)
  } catch (err) {
    if (!existsSync(built)) throw err
    console.warn(`${err.message}: measuring the dist/ that is there`)
  }
}

await import('./bench.js')
