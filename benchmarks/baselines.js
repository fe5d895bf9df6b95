// The plugin as it was at an earlier commit, built once into node_modules/.cache/baselines/<sha>/
// and measured beside the working tree's build (`--baseline REF`). Under node_modules, the old
// commit's sources, tests and build are out of reach of git, eslint and tap.
import { existsSync, mkdirSync, renameSync, rmSync, symlinkSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { join } from 'node:path'

const root = fileURLToPath(new URL('..', import.meta.url))
const cache = fileURLToPath(new URL('node_modules/.cache/baselines/', import.meta.url))

function run (command, args, cwd) {
  const { status, stdout, stderr } = spawnSync(command, args, { cwd, encoding: 'utf8' })
  if (status !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${status}: ${stderr.trim()}`)
  return stdout.trim()
}

/**
 * `{ name, sha, short, module, cache }` for the commit `ref` names, building it the first time;
 * `REF+cache` measures that commit with the local cache on, as the plugin-cache contestant.
 */
export function buildBaseline (spec) {
  const cached = spec.endsWith('+cache')
  const ref = cached ? spec.slice(0, -'+cache'.length) : spec
  const sha = run('git', ['rev-parse', '--verify', `${ref}^{commit}`], root)
  const short = sha.slice(0, 7)
  const dir = join(cache, sha)
  const module = join(dir, 'dist', 'index.js')
  if (!existsSync(module)) {
    console.log(`building fastify-session-redis at ${short} into ${dir}`)
    // built next door and moved in whole, so a failed build leaves no cache entry behind
    const tmp = `${dir}.tmp`
    rmSync(tmp, { recursive: true, force: true })
    mkdirSync(tmp, { recursive: true })
    run('sh', ['-c', `git archive ${sha} | tar -x -C "${tmp}"`], root)
    // today's dependencies: an old package-lock is not installed again for every baseline
    symlinkSync(join(root, 'node_modules'), join(tmp, 'node_modules'))
    // an old commit may not type-check against today's dependencies: tsc emits all the same
    const build = spawnSync('npm', ['run', 'build', '--silent'], { cwd: tmp, stdio: 'inherit' })
    if (!existsSync(join(tmp, 'dist', 'index.js'))) throw new Error(`${short}: npm run build (exit ${build.status}) wrote no dist/index.js`)
    if (build.status !== 0) console.warn(`${short}: npm run build exited with ${build.status}; measuring what it emitted`)
    renameSync(tmp, dir)
  }
  return { name: `baseline-${short}${cached ? '-cache' : ''}`, sha, short, module: pathToFileURL(module).href, cache: cached }
}
