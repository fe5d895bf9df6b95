import neostandard from 'neostandard'

// lib/ is in layers, each importing only those below it; these rules keep it so:
//   model/   no I/O: documents, expiry, ids, alias format, schema, settings; errors, events, counters
//   redis/   every Redis command  ← model
//   cookie/  signing and sending the id  ← model
//   session/ a request's session and the repository of stored sessions  ← model, redis, cookie
//   lib/*.ts the plugin's root (wiring, hooks, option parsing, admin manager)  ← all of them
const ROOT = { regex: '^\\.\\./[\\w-]+\\.js$', message: 'the plugin\'s root (lib/*.ts) is the top layer: nothing in a folder imports it' }
const layer = (forbidden, below) => ({
  regex: `^\\.\\./(${forbidden.join('|')})/`,
  message: `a layer imports only the layers below it (${below})`
})
// only the redis layer, and the root that creates the client, may run ioredis code; types are free
const NO_IOREDIS = { name: 'ioredis', allowTypeImports: true, message: 'only lib/redis/ and the root speak to Redis' }
const restrict = (patterns, paths = [NO_IOREDIS]) => ['error', { paths, patterns }]

export default [
  ...neostandard({
    ts: true,
    filesTs: ['**/*.mts'],
    ignores: ['dist/**', 'coverage/**', '.tap/**', 'benchmarks/node_modules/**', 'benchmarks/results/**']
  }),
  {
    // tools/import-levels.js (run by `npm run lint` after eslint) also counts type-only imports, and the levels
    files: ['lib/**/*.ts'],
    // import-x reads only .js files' imports unless told: without this, no-cycle sees no .ts file
    settings: { 'import-x/extensions': ['.ts', '.js'] },
    rules: {
      // a cycle would mean two layers each need the other: a module split in the wrong place
      'import-x/no-cycle': ['error', { ignoreExternal: true }]
    }
  },
  {
    files: ['lib/model/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': restrict([{
        regex: '^\\.\\./(?!\\.\\./types/)',
        message: 'model/ is the bottom layer: it imports only model/ and the public types'
      }], [NO_IOREDIS, { name: 'fastify', allowTypeImports: true, message: 'model/ does no I/O' }])
    }
  },
  {
    files: ['lib/redis/**/*.ts'],
    rules: { '@typescript-eslint/no-restricted-imports': restrict([layer(['cookie', 'session'], 'model'), ROOT], []) }
  },
  {
    files: ['lib/cookie/**/*.ts'],
    rules: { '@typescript-eslint/no-restricted-imports': restrict([layer(['redis', 'session'], 'model'), ROOT]) }
  },
  {
    files: ['lib/session/**/*.ts'],
    rules: { '@typescript-eslint/no-restricted-imports': restrict([ROOT]) }
  }
]
