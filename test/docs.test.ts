import { test } from 'tap'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

// README.md and docs/*.md link into each other; these checks keep the split between them honest:
// every relative link and #anchor resolves, every page of docs/ is linked from the README, and every
// TypeScript snippet is a copy of code the compiler checks (tsd tests in types/, examples/).

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter(f => f.endsWith('.md')).sort().map(f => `docs/${f}`)]
const repository = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { repository: { url: string } })
  .repository.url.replace(/^git\+/, '').replace(/\.git$/, '')

/**
 * A link to a file of this repository on GitHub, as a path from its root. README.md links its files
 * so, because the registry shows README.md without the files beside it; they are checked like
 * relative links.
 */
function ownFile (target: string): string | undefined {
  const prefixes = [`${repository}/blob/main/`, `${repository}/tree/main/`,
    `https://raw.githubusercontent.com${new URL(repository).pathname}/main/`]
  const prefix = prefixes.find(p => target.startsWith(p))
  return prefix === undefined ? undefined : target.slice(prefix.length)
}

/** The file's text outside fenced code blocks (kept line for line, so line numbers hold). */
function prose (text: string): string {
  let fenced = false
  return text.split('\n').map(line => {
    if (/^\s*```/.test(line)) {
      fenced = !fenced
      return ''
    }
    return fenced ? '' : line
  }).join('\n')
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchorsOf (text: string): Set<string> {
  const seen = new Map<string, number>()
  const anchors = new Set<string>()
  for (const match of prose(text).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = match[1].toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-')
    const count = seen.get(base) ?? 0
    seen.set(base, count + 1)
    anchors.add(count === 0 ? base : `${base}-${count}`)
  }
  return anchors
}

/** Each link target in the file's prose (inline code left out), with its line. */
function linksOf (text: string): Array<{ target: string, line: number }> {
  const links: Array<{ target: string, line: number }> = []
  prose(text).split('\n').forEach((line, i) => {
    const bare = line.replace(/``.*?``|`[^`]*`/g, '')
    for (const match of bare.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) links.push({ target: match[1], line: i + 1 })
  })
  return links
}

/** What is wrong with the relative links of `page` (a path from the repository's root). */
function brokenLinks (page: string, text: string, read: (path: string) => string | undefined): string[] {
  const broken: string[] = []
  for (const { target, line } of linksOf(text)) {
    const own = ownFile(target)
    if (own === undefined && /^[a-z][a-z+.-]*:/i.test(target)) continue // https:, mailto:
    const [file, anchor] = (own ?? target).split('#', 2) as [string, string | undefined]
    const path = file === '' ? page : relative(root, join(root, own === undefined ? dirname(page) : '', decodeURIComponent(file)))
    const where = `${page}:${line} ${target}`
    if (path.startsWith('..')) {
      broken.push(`${where}: leaves the repository`)
      continue
    }
    const content = read(path)
    if (content === undefined) broken.push(`${where}: no file ${path}`)
    else if (anchor !== undefined && !anchorsOf(content).has(anchor)) broken.push(`${where}: no heading #${anchor} in ${path}`)
  }
  return broken
}

function readRepo (path: string): string | undefined {
  const full = join(root, path)
  if (!existsSync(full)) return undefined
  return path.endsWith('.md') ? readFileSync(full, 'utf8') : ''
}

/** The ```ts blocks of a page, each with the line it starts on. */
function snippetsOf (text: string): Array<{ code: string, line: number }> {
  return [...text.matchAll(/^```ts\n([\s\S]*?)^```/gm)].map(match => ({
    code: match[1],
    line: text.slice(0, match.index).split('\n').length
  }))
}

const isComment = (line: string): boolean => /^(\/\/|\/\*|\*)/.test(line)
const codeLines = (code: string): string[] => code.split('\n').map(l => l.trim()).filter(l => l !== '' && !isComment(l))

/** `import … from 'm'`: the module and the names it binds. */
function importOf (line: string): { from: string, names: string[] } | undefined {
  const match = /^import\s+(.+?)\s+from\s+'([^']+)'$/.exec(line)
  if (match === null) return undefined
  return { from: match[2], names: match[1].replace(/\btype\b|[{},*]|\bas\b/g, ' ').split(/\s+/).filter(Boolean) }
}

/**
 * Whether `file` holds the snippet: its imports anywhere in the file's imports (same module, same
 * names), the rest of its lines, trimmed, one after another. Comment-only lines are left out of both,
 * so a checked copy may mark a line `// @ts-expect-error` where the page shows a compile error.
 */
function holds (file: string, code: string): boolean {
  const lines = codeLines(code)
  const fileLines = codeLines(file)
  const fileImports = fileLines.map(importOf).filter(i => i !== undefined)
  const imports = lines.map(importOf)
  for (const wanted of imports) {
    if (wanted === undefined) continue
    const found = fileImports.some(have => have.from === wanted.from && wanted.names.every(n => have.names.includes(n)))
    if (!found) return false
  }
  const body = lines.filter((_, i) => imports[i] === undefined)
  for (let start = 0; start + body.length <= fileLines.length; start++) {
    if (body.every((line, i) => fileLines[start + i] === line)) return true
  }
  return false
}

/** The files the compiler checks: `tsd` (types/), `npm run test:types` (types/augmented/), `tsc -p examples`. */
function checkedFiles (): Map<string, string> {
  const files = new Map<string, string>()
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  for (const f of readdirSync(join(root, 'types'))) {
    if (f.endsWith('.test-d.ts')) files.set(`types/${f}`, readFileSync(join(root, 'types', f), 'utf8'))
  }
  for (const match of pkg.scripts['test:types'].matchAll(/--files (\S+)/g)) {
    files.set(match[1], readFileSync(join(root, match[1]), 'utf8'))
  }
  const examples = JSON.parse(readFileSync(join(root, 'examples/tsconfig.json'), 'utf8')) as { include: string[] }
  for (const f of examples.include) files.set(`examples/${f}`, readFileSync(join(root, 'examples', f), 'utf8'))
  return files
}

function uncheckedSnippets (page: string, text: string, files: Map<string, string>): string[] {
  return snippetsOf(text)
    .filter(({ code }) => ![...files.values()].some(file => holds(file, code)))
    .map(({ code, line }) => `${page}:${line} ${codeLines(code)[0]}`)
}

test('every relative link and #anchor of README.md and docs/ points to a file and heading that exist', async (t) => {
  t.ok(pages.length > 5, `pages: ${pages.join(', ')}`)
  let links = 0
  for (const page of pages) {
    const text = readFileSync(join(root, page), 'utf8')
    links += linksOf(text).length
    t.same(brokenLinks(page, text, readRepo), [], `${page}: every relative link resolves`)
  }
  t.ok(links > 50, `${links} links`)
})

test('the link check finds a missing file, a missing heading and a link out of the repository', async (t) => {
  const docs = new Map([['docs/a.md', '# A page\n\n## Its `part` two\n\n[ok](#its-part-two) [ok](../README.md#api)\n']])
  const read = (path: string): string | undefined => docs.get(path) ?? readRepo(path)
  t.same(brokenLinks('docs/a.md', docs.get('docs/a.md') ?? '', read), [])
  const text = '[a](b.md) [c](a.md#nope) [d](../../x.md) `[e](in-code.md)`\n```\n[f](in-fence.md)\n```\n[g](https://example.com/x)\n'
  t.same(brokenLinks('docs/a.md', text, read), [
    'docs/a.md:1 b.md: no file docs/b.md',
    'docs/a.md:1 a.md#nope: no heading #nope in docs/a.md',
    'docs/a.md:1 ../../x.md: leaves the repository'
  ])
  const own = `[h](${repository}/blob/main/docs/a.md#its-part-two) [i](${repository}/blob/main/docs/nope.md) [j](${repository}/blob/main/docs/a.md#nope)`
  t.same(brokenLinks('README.md', own, read), [
    `README.md:1 ${repository}/blob/main/docs/nope.md: no file docs/nope.md`,
    `README.md:1 ${repository}/blob/main/docs/a.md#nope: no heading #nope in docs/a.md`
  ], 'a link to a file of this repository on GitHub is checked as a relative one')
  t.same([...anchorsOf('# Migrating from @fastify/session\n## Why pick it\n## Why pick it\n### `app.sessions`\n')],
    ['migrating-from-fastifysession', 'why-pick-it', 'why-pick-it-1', 'appsessions'])
})

test('every page of docs/ has a title and is linked from README.md', async (t) => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const linked = new Set(linksOf(readme).map(l => (ownFile(l.target) ?? l.target).split('#')[0]))
  for (const page of pages.slice(1)) {
    t.match(readFileSync(join(root, page), 'utf8'), /^# \S/, `${page} opens with its title`)
    t.ok(linked.has(page), `README links ${page}`)
  }
})

test('every TypeScript snippet of README.md and docs/ is a copy of code the compiler checks', async (t) => {
  const files = checkedFiles()
  t.ok(files.has('examples/typed-session.ts') && files.has('types/plugin.test-d.ts'), 'the checked files are found')
  let snippets = 0
  for (const page of pages) {
    const text = readFileSync(join(root, page), 'utf8')
    snippets += snippetsOf(text).length
    t.same(uncheckedSnippets(page, text, files), [], `${page}: every snippet is type-checked`)
  }
  t.ok(snippets >= 14, `${snippets} snippets`)
})

test('the snippet check finds a snippet nobody checks, and a wrong import', async (t) => {
  const files = new Map([['types/x.test-d.ts', "import { Redis } from 'ioredis'\nconst a = 1\n// @ts-expect-error\nconst b: string = a\n"]])
  const page = "```ts\nimport { Redis } from 'ioredis'\nconst a = 1\nconst b: string = a // shown\n```\n\n```ts\nconst a = 1\n  const b: string = a\n```\n\n```ts\nimport { Cluster } from 'ioredis'\nconst a = 1\n```\n"
  t.same(uncheckedSnippets('p.md', page, files), ['p.md:1 import { Redis } from \'ioredis\'', 'p.md:12 import { Cluster } from \'ioredis\''])
})
