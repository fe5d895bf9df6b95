// `npm run lint` runs this after eslint: lib/ must have no import cycle, counting `import type` too
// (import-x/no-cycle skips type-only imports), and at most MAX levels: the longest chain of
// imports, counted in files (a file importing nothing from lib/ is level 1).
// `node tools/import-levels.js --list` prints every file's level and the longest chain.
import { readFileSync, readdirSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const MAX = 8
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'lib')
const IMPORT = /^(?:import|export)\s[^'"]*?['"](\.{1,2}\/[^'"]+)['"]/gm

const files = readdirSync(root, { recursive: true }).filter((name) => name.endsWith('.ts')).map((name) => join(root, name))
const imports = new Map(files.map((file) => {
  const targets = [...readFileSync(file, 'utf8').matchAll(IMPORT)]
    .map((match) => resolve(dirname(file), match[1].replace(/\.js$/, '.ts')))
    .filter((target) => target.startsWith(root + '/'))
  return [file, [...new Set(targets)]]
}))

const name = (file) => relative(root, file)
const level = new Map()
const next = new Map()
const visiting = []

function levelOf (file) {
  if (level.has(file)) return level.get(file)
  const at = visiting.indexOf(file)
  if (at !== -1) {
    console.error(`import cycle in lib/: ${[...visiting.slice(at), file].map(name).join(' -> ')}`)
    process.exit(1)
  }
  visiting.push(file)
  let below = 0
  for (const target of imports.get(file)) {
    const l = levelOf(target)
    if (l > below) {
      below = l
      next.set(file, target)
    }
  }
  visiting.pop()
  level.set(file, below + 1)
  return below + 1
}

const top = files.reduce((a, b) => (levelOf(b) > levelOf(a) ? b : a))
const chain = [top]
while (next.has(chain.at(-1))) chain.push(next.get(chain.at(-1)))
if (process.argv.includes('--list')) {
  for (const file of [...files].sort((a, b) => level.get(b) - level.get(a) || a.localeCompare(b))) console.log(level.get(file), name(file))
  console.log(`${files.length} files, ${[...imports.values()].reduce((n, t) => n + t.length, 0)} imports, longest chain: ${chain.map(name).join(' -> ')}`)
}
if (chain.length > MAX) {
  console.error(`lib/ has ${chain.length} import levels, more than ${MAX}: ${chain.map(name).join(' -> ')}`)
  process.exit(1)
}
