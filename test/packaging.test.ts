import { execFile } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, readFile, readdir, rename, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, posix } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import tap, { test } from 'tap'
import { Redis } from 'ioredis'
import { startRedis } from './helpers/redis-server.js'

const run = promisify(execFile)
const root = fileURLToPath(new URL('..', import.meta.url))
const modules = join(root, 'node_modules')
const LIMIT = { timeout: 180_000, maxBuffer: 16 * 1024 * 1024 }

// a build and two compiler runs: minutes, not seconds, on a loaded machine
tap.setTimeout(360_000)

/**
 * The package as `npm pack` makes it from a checkout that was never built, installed into an app of
 * its own outside this repository, as npm lays it out: the package's own dependencies in its own
 * node_modules, its peers (fastify, and the app's ioredis 5) beside it. `npm install --offline` cannot
 * resolve version ranges after a bare `npm ci` (npm caches tarballs, not the registry's listings),
 * so the tarball is unpacked by hand and exactly the names its package.json declares are linked to
 * the copies this repository installed: a dependency it forgets to declare cannot be found.
 */
const APP_TS = `
import { createRequire } from 'node:module'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import redisSession, { errors, redisSession as named, Type, type SessionDataOf } from 'fastify-session-redis'

const sessionSchema = Type.Object({
  user: Type.Object({ id: Type.Integer(), name: Type.String() }),
  views: Type.Integer({ minimum: 0 })
}, { additionalProperties: false })

declare module 'fastify-session-redis' {
  interface SessionData extends SessionDataOf<typeof sessionSchema> {}
}

const client = new Redis(process.env.REDIS_URL as string, { connectionName: 'packaging-app', maxRetriesPerRequest: 1 })
const app = Fastify()
await app.register(redisSession, { client, secret: 'packaging-secret-0123456789-abcdefgh', prefix: 'packaging:', schema: sessionSchema })
app.post('/login', async (req) => {
  req.session.set('user', { id: 1, name: 'Ada' })
  req.session.increment('views')
  if (req.headers['x-never'] === 'sent') {
    // @ts-expect-error views holds a number: the schema types the session through SessionData
    req.session.set('views', 'many')
  }
  return { id: req.session.id }
})
app.get('/me', async (req) => ({ name: req.session.get('user')?.name, views: req.session.get('views') }))
app.post('/negative', async (req) => {
  try {
    req.session.set('views', -1)
    return { code: 'none' }
  } catch (err) {
    return { code: (err as { code: string }).code }
  }
})

const login = await app.inject({ method: 'POST', url: '/login' })
const cookie = String(login.headers['set-cookie']).split(';')[0]
const me = await app.inject({ url: '/me', headers: { cookie } })
const negative = await app.inject({ method: 'POST', url: '/negative', headers: { cookie } })
const clients = String(await client.call('CLIENT', 'LIST')).trim().split('\\n').map((line) => /\\bname=(\\S*)/.exec(line)?.[1])
console.log(JSON.stringify({
  sameExport: named === redisSession,
  errorCode: new errors.FST_REDIS_SESSION_SCHEMA_MISMATCH('views', 'Expected integer').code,
  ioredis: (createRequire(import.meta.url)('ioredis/package.json') as { version: string }).version,
  login: login.statusCode,
  me: me.json(),
  negative: negative.json(),
  clients
}))
await app.close()
await client.quit()
`

const COMMONJS_CTS = `
import Fastify = require('fastify')
import { Redis } from 'ioredis'
import redisSession, { Type } from 'fastify-session-redis'

async function main (): Promise<void> {
  const client = new Redis(process.env.REDIS_URL as string, { maxRetriesPerRequest: 1 })
  const app = Fastify()
  await app.register(redisSession, { client, secret: 'packaging-secret-0123456789-abcdefgh', prefix: 'packaging-cjs:', schema: Type.Object({ views: Type.Integer() }) })
  app.post('/', async (req) => { req.session.set('views', 1); return { isNew: req.session.isNew } })
  const res = await app.inject({ method: 'POST', url: '/' })
  console.log(JSON.stringify({ status: res.statusCode, body: res.json(), cookie: typeof res.headers['set-cookie'] }))
  await app.close()
  await client.quit()
}
main().catch((err) => { console.error(err); process.exitCode = 1 })
`

const COMPILER = { target: 'ES2022', lib: ['ES2023'], types: ['node'], strict: true, skipLibCheck: true }
const TSCONFIGS = {
  'tsconfig.nodenext.json': { compilerOptions: { ...COMPILER, module: 'nodenext', moduleResolution: 'nodenext', outDir: 'out' }, files: ['app.ts', 'commonjs.cts'] },
  'tsconfig.bundler.json': { compilerOptions: { ...COMPILER, module: 'esnext', moduleResolution: 'bundler', noEmit: true }, files: ['app.ts'] }
}

async function link (target: string, at: string): Promise<void> {
  await mkdir(dirname(at), { recursive: true })
  await symlink(target, at, 'dir')
}

async function exists (path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false)
}

/** The files a fresh clone holds: git's, with what is on disk now (uncommitted changes included). */
async function freshCheckout (into: string): Promise<void> {
  const { stdout } = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, ...LIMIT })
  for (const file of stdout.split('\0')) {
    if (file === '' || !await exists(join(root, file))) continue
    await mkdir(dirname(join(into, file)), { recursive: true })
    await copyFile(join(root, file), join(into, file))
  }
  await symlink(modules, join(into, 'node_modules'), 'dir')
}

/** Relative link and image targets in Markdown; they break on the registry's page. */
function relativeLinks (markdown: string): string[] {
  const targets = [...markdown.matchAll(/\]\(([^)\s]+)[^)]*\)/g), ...markdown.matchAll(/<img[^>]*\ssrc="([^"]+)"/g)].map(m => m[1])
  return targets.filter(target => !/^(https?:\/\/|mailto:|#)/.test(target))
}

test('the packed package, installed into an app of its own', async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'fastify-session-redis-pack-'))
  t.teardown(() => rm(work, { recursive: true, force: true }))
  const redisServer = await startRedis()
  t.teardown(() => redisServer.stop())

  const checkout = join(work, 'checkout')
  await freshCheckout(checkout)
  t.notOk(await exists(join(checkout, 'dist')), 'the checkout has no build')
  await run('npm', ['pack', '--silent', '--pack-destination', work], { cwd: checkout, ...LIMIT })
  const manifest = JSON.parse(await readFile(join(checkout, 'package.json'), 'utf8'))
  const tarball = join(work, `${manifest.name as string}-${manifest.version as string}.tgz`)
  const listed = (await run('tar', ['-tzf', tarball], LIMIT)).stdout.split('\n').filter(Boolean).map(file => file.replace(/^package\//, ''))
  const app = join(work, 'app')
  const installed = join(app, 'node_modules', manifest.name)
  await mkdir(join(work, 'unpacked'))
  await run('tar', ['-xzf', tarball, '-C', join(work, 'unpacked')], LIMIT)
  await mkdir(dirname(installed), { recursive: true })
  await rename(join(work, 'unpacked', 'package'), installed)

  await t.test('npm pack builds first: the tarball holds the build, the types and the docs a user needs', async (t) => {
    for (const file of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'dist/index.js', 'types/index.d.ts']) {
      t.ok(listed.includes(file), file)
    }
    t.same(listed.filter(file => !/^(dist|lib|types)\//.test(file)).sort(),
      ['CHANGELOG.md', 'LICENSE', 'README.md', 'package.json'], 'nothing else at the top')
    t.same(listed.filter(file => /(^|\/)(test|benchmarks|node_modules)\//.test(file) || /\.test(-d)?\.ts$/.test(file)), [], 'no tests, benchmarks or modules')
  })

  await t.test('every source map points at sources the package holds', async (t) => {
    const maps = listed.filter(file => file.endsWith('.map'))
    t.ok(maps.length > 0, 'the build has source maps')
    for (const map of maps) {
      const { sources } = JSON.parse(await readFile(join(installed, map), 'utf8')) as { sources: string[] }
      for (const source of sources) {
        const file = posix.normalize(posix.join(posix.dirname(map), source))
        t.ok(listed.includes(file), `${map} → ${file}`)
      }
    }
  })

  await t.test('package.json names where the project lives, and ioredis is a peer', async (t) => {
    t.match(manifest.repository, { type: 'git', url: /^git\+https:\/\/github\.com\/.+\.git$/ })
    t.match(manifest.homepage, /^https:\/\//)
    t.match(manifest.bugs, { url: /^https:\/\// })
    t.equal(manifest.dependencies.ioredis, undefined, 'not a dependency: the app brings its own')
    t.equal(manifest.peerDependencies.ioredis, '^5.8.2 || ^6')
    t.equal(manifest.scripts.prepack.endsWith('npm run build'), true)
  })

  await t.test('README and CHANGELOG links work on the registry\'s page: absolute, or anchors', async (t) => {
    for (const file of ['README.md', 'CHANGELOG.md']) {
      t.same(relativeLinks(await readFile(join(installed, file), 'utf8')), [], file)
    }
  })

  // the app: its own fastify and ioredis 5 (the oldest the peer range allows); the package's dependencies nested in it
  for (const name of Object.keys(manifest.dependencies)) await link(join(modules, name), join(installed, 'node_modules', name))
  await link(join(modules, 'fastify'), join(app, 'node_modules', 'fastify'))
  await link(join(modules, 'ioredis-5'), join(app, 'node_modules', 'ioredis'))
  await link(join(modules, '@types', 'node'), join(app, 'node_modules', '@types', 'node'))
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }))
  await writeFile(join(app, 'app.ts'), APP_TS)
  await writeFile(join(app, 'commonjs.cts'), COMMONJS_CTS)
  for (const [name, config] of Object.entries(TSCONFIGS)) await writeFile(join(app, name), JSON.stringify(config))
  const env = { ...process.env, REDIS_URL: redisServer.url }
  const tsc = join(modules, 'typescript', 'bin', 'tsc')

  await t.test('it type-checks with ioredis 5 under module nodenext (ESM and CommonJS) and moduleResolution bundler', async (t) => {
    const results = await Promise.all(Object.keys(TSCONFIGS).map(async (config) =>
      run(process.execPath, [tsc, '-p', config], { cwd: app, ...LIMIT }).then(() => '', (err: { stdout: string }) => err.stdout)))
    t.same(results, ['', ''], 'no compiler errors')
    t.same((await readdir(join(app, 'out'))).sort(), ['app.js', 'commonjs.cjs'])
  })

  await t.test('an ES module imports it: the schema built with its Type is enforced, with the app\'s own client', async (t) => {
    const { stdout } = await run(process.execPath, ['out/app.js'], { cwd: app, env, ...LIMIT })
    const result = JSON.parse(stdout)
    t.match(result.ioredis, /^5\./, 'the app runs ioredis 5')
    t.same(result, {
      sameExport: true,
      errorCode: 'FST_REDIS_SESSION_SCHEMA_MISMATCH',
      ioredis: result.ioredis,
      login: 200,
      me: { name: 'Ada', views: 1 },
      negative: { code: 'FST_REDIS_SESSION_SCHEMA_MISMATCH' },
      clients: ['packaging-app']
    }, 'the only connection to Redis is the client the app passed')
    const redis = new Redis(redisServer.url)
    t.teardown(() => redis.disconnect())
    t.equal((await redis.keys('packaging:*')).length, 1, 'the session was stored through it')
  })

  await t.test('a CommonJS file requires it', async (t) => {
    const { stdout } = await run(process.execPath, ['out/commonjs.cjs'], { cwd: app, env, ...LIMIT })
    t.same(JSON.parse(stdout), { status: 200, body: { isNew: true }, cookie: 'string' })
    t.match(await readFile(join(app, 'out', 'commonjs.cjs'), 'utf8'), /require\("fastify-session-redis"\)/, 'through require()')
  })
})
