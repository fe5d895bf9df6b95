// The options are written down three times: the public types (types/index.d.ts), the TypeBox schema
// and defaults that validate them, and README's options table. This file reads all three and fails
// when an option, or a default, is in one and not the others.
import { test } from 'tap'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import ts from 'typescript'
import { resolveOptions } from '../lib/options.js'
import { defaults, cookieOverrides } from '../lib/model/settings.js'
import type { RedisSessionOptions } from '../types/index.js'

const root = new URL('..', import.meta.url).pathname

/** Stands for a default that is no literal (a function, prose): only its presence is compared. */
const NOT_LITERAL = Symbol('not a literal')

/** The value of a literal expression: string, number, boolean, undefined or an object of those. */
function literal (node: ts.Node): unknown {
  if (ts.isParenthesizedExpression(node)) return literal(node.expression)
  if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) return node.text
  if (ts.isNumericLiteral(node)) return Number(node.text)
  if (node.kind === ts.SyntaxKind.TrueKeyword) return true
  if (node.kind === ts.SyntaxKind.FalseKeyword) return false
  if (ts.isIdentifier(node) && node.text === 'undefined') return undefined
  if (ts.isObjectLiteralExpression(node)) {
    const value: Record<string, unknown> = {}
    for (const property of node.properties) {
      if (!ts.isPropertyAssignment(property)) return NOT_LITERAL
      const field = literal(property.initializer)
      if (field === NOT_LITERAL) return NOT_LITERAL
      value[property.name.getText()] = field
    }
    return value
  }
  return NOT_LITERAL
}

/** Parses `text` (a default as the types or README write it) as an expression. */
function parseDefault (text: string): unknown {
  const file = ts.createSourceFile('default.ts', `(${text.trim()})`, ts.ScriptTarget.ES2022, true)
  const statement = file.statements[0]
  if (file.statements.length !== 1 || !ts.isExpressionStatement(statement)) return NOT_LITERAL
  return literal(statement.expression)
}

interface Documented {
  /** Option name to its documented default: absent key, no default; NOT_LITERAL, one in prose. */
  options: Map<string, unknown>
  cookie: Map<string, unknown>
}

/** An interface's members and their `@default` tags, from the declaration file. */
function interfaceMembers (file: ts.SourceFile, name: string): Map<string, unknown> {
  const members = new Map<string, unknown>()
  let found = false
  file.forEachChild(node => {
    if (!ts.isInterfaceDeclaration(node) || node.name.text !== name) return
    found = true
    for (const member of node.members) {
      const key = member.name?.getText(file)
      if (key === undefined) continue
      const tag = ts.getJSDocTags(member).find(t => t.tagName.text === 'default')
      const comment = tag === undefined ? undefined : ts.getTextOfJSDocComment(tag.comment)
      members.set(key, comment === undefined ? undefined : parseDefault(comment))
    }
  })
  if (!found) throw new Error(`types/index.d.ts declares no interface ${name}`)
  return members
}

function fromTypes (): Documented {
  const path = join(root, 'types/index.d.ts')
  const file = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.ES2022, true)
  return { options: interfaceMembers(file, 'RedisSessionOptions'), cookie: interfaceMembers(file, 'SessionCookieOptions') }
}

/** README's options table: option to default (its cell parsed), and the cookie row's own defaults. */
function fromReadme (): Documented & { rows: Map<string, string> } {
  const text = readFileSync(join(root, 'README.md'), 'utf8')
  const section = text.split(/^## Options$/m)[1]?.split(/^## /m)[0]
  if (section === undefined) throw new Error('README.md has no "## Options" section')
  const options = new Map<string, unknown>()
  const rows = new Map<string, string>()
  for (const line of section.split('\n')) {
    const cells = line.match(/^\| `([A-Za-z]+)` \| (.*?) \| (.*) \|$/)
    if (cells === null) continue
    const [, name, cell, meaning] = cells
    rows.set(name, meaning)
    if (cell === '—') options.set(name, undefined)
    else if (cell === 'required') options.set(name, undefined)
    else if (/^`[^`]+`$/.test(cell)) options.set(name, parseDefault(cell.slice(1, -1)))
    else options.set(name, NOT_LITERAL)
  }
  // the cookie row: its default object, then "also `name` (`default`), `name` …" for the other attributes
  const cookie = new Map<string, unknown>()
  const cookieDefault = options.get('cookie')
  if (typeof cookieDefault === 'object' && cookieDefault !== null) {
    for (const [key, value] of Object.entries(cookieDefault)) cookie.set(key, value)
  }
  const others = (rows.get('cookie') ?? '').match(/^also (.*?)\. /)?.[1] ?? ''
  for (const [, name, value] of others.matchAll(/`([A-Za-z]+)`(?: \(`([^`]+)`\))?/g)) {
    if (!cookie.has(name)) cookie.set(name, value === undefined ? undefined : parseDefault(value))
  }
  return { options, cookie, rows }
}

/** The source of the file in lib/ that holds the settings schema, and its AST. */
function schemaSource (): ts.SourceFile {
  const files = (readdirSync(join(root, 'lib'), { recursive: true }) as string[]).filter(f => f.endsWith('.ts'))
  for (const name of files) {
    const path = join(root, 'lib', name)
    const text = readFileSync(path, 'utf8')
    if (text.includes('const SettingsSchema = ')) return ts.createSourceFile(path, text, ts.ScriptTarget.ES2022, true)
  }
  throw new Error('no file in lib/ defines SettingsSchema')
}

/** The property names of `Type.Object({ … })` assigned to `variable`, and the strings of `new Set([…])`. */
function declared (file: ts.SourceFile, variable: string): string[] {
  let names: string[] | undefined
  const visit = (node: ts.Node): void => {
    if (ts.isVariableDeclaration(node) && node.name.getText(file) === variable && node.initializer !== undefined &&
      (ts.isCallExpression(node.initializer) || ts.isNewExpression(node.initializer))) {
      const [first] = node.initializer.arguments ?? []
      if (ts.isObjectLiteralExpression(first)) names = first.properties.map(p => p.name!.getText(file))
      else if (ts.isArrayLiteralExpression(first)) names = first.elements.map(e => (e as ts.StringLiteral).text)
    }
    node.forEachChild(visit)
  }
  visit(file)
  if (names === undefined) throw new Error(`${file.fileName} has no ${variable}`)
  return names
}

function fromSchema (): { options: string[], cookie: string[] } {
  const file = schemaSource()
  return {
    options: [...declared(file, 'SettingsSchema'), ...declared(file, 'otherNames')],
    cookie: declared(file, 'CookieSchema')
  }
}

const sorted = (names: Iterable<string>): string[] => [...names].sort()

/** What the parser says of an option holding a value no option takes. */
function refusal (options: Record<string, unknown>): string {
  try {
    resolveOptions(options as unknown as RedisSessionOptions)
  } catch (err) {
    return (err as Error).message
  }
  return 'accepted'
}

test('the schema read from lib/ is the one the option parser runs', async (t) => {
  const schema = fromSchema()
  const probe = Symbol('no option takes this')
  for (const name of schema.options) {
    t.notMatch(refusal({ [name]: probe }), /is not a known option/, `${name}: a known option`)
  }
  t.match(refusal({ notAnOption: 1 }), /"?notAnOption"? is not a known option/, 'and a made-up one is not')
  for (const name of schema.cookie) {
    t.throws(() => cookieOverrides({ [name]: probe }), { code: 'FST_REDIS_SESSION_INVALID_VALUE' }, `cookie.${name}: a known attribute`)
  }
  t.equal(cookieOverrides({ notAnAttribute: 1 }), undefined, 'and a made-up one is not')
})

test('every option is in the types, the schema and the README table alike', async (t) => {
  const types = fromTypes()
  const readme = fromReadme()
  const schema = fromSchema()
  t.ok(schema.options.length >= 20, `the schema has its options (${schema.options.length})`)
  t.same(sorted(types.options.keys()), sorted(schema.options), 'RedisSessionOptions and the schema name the same options')
  t.same(sorted(readme.options.keys()), sorted(schema.options), 'the README table and the schema name the same options')
  t.same(sorted(types.cookie.keys()), sorted(schema.cookie), 'SessionCookieOptions and the cookie schema name the same attributes')
  t.same(sorted(readme.cookie.keys()), sorted(schema.cookie), 'the README cookie row and the cookie schema name the same attributes')
})

test('every documented default is the default the schema applies', async (t) => {
  const types = fromTypes()
  const readme = fromReadme()
  const applied = defaults as unknown as Record<string, unknown>
  const appliedCookie = defaults.cookie as unknown as Record<string, unknown>
  for (const [name, documented] of types.options) {
    if (name === 'cookie') continue
    const inReadme = readme.options.get(name)
    if (name in applied) {
      t.same(documented, applied[name], `${name}: the types' @default is the schema's`)
      t.same(inReadme, applied[name], `${name}: the README's default is the schema's`)
    } else {
      t.ok(documented === undefined || documented === NOT_LITERAL, `${name}: no literal default in the types for an option the schema gives none`)
      t.equal(inReadme === NOT_LITERAL, documented === NOT_LITERAL, `${name}: the README and the types agree on whether it has a default`)
    }
  }
  for (const [name, value] of Object.entries(appliedCookie)) {
    const documented = types.cookie.get(name) ?? (types.options.get('cookie') as Record<string, unknown>)[name]
    t.same(documented, value, `cookie.${name}: the types' @default is the schema's`)
    t.same(readme.cookie.get(name), value, `cookie.${name}: the README's default is the schema's`)
  }
  t.same(types.options.get('cookie'), readme.options.get('cookie'), 'the cookie default object reads the same in the types and the README')
  for (const name of types.cookie.keys()) {
    if (!(name in appliedCookie)) {
      t.equal(types.cookie.get(name), undefined, `cookie.${name}: no default documented, none applied`)
      t.equal(readme.cookie.get(name), undefined, `cookie.${name}: none in the README either`)
    }
  }
})
