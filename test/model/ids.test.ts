import { test } from 'tap'
import { createHash } from 'node:crypto'
import { defaultIdGenerator, idsOf, isValidId, storedIdOf } from '../../lib/model/ids.js'

test('the default id: 32 random bytes in base64url, of the id format', async (t) => {
  const ids = new Set<string>()
  for (let i = 0; i < 100; i++) ids.add(defaultIdGenerator())
  t.equal(ids.size, 100, 'no two alike')
  for (const id of ids) {
    t.match(id, /^[A-Za-z0-9_-]{43}$/)
    t.equal(Buffer.from(id, 'base64url').length, 32)
  }
  t.ok([...ids].every(isValidId))
})

test('isValidId: 22 to 128 characters of [A-Za-z0-9_-], and a string', async (t) => {
  t.equal(isValidId('a'.repeat(22)), true, '22 characters: 128 bits')
  t.equal(isValidId('a'.repeat(21)), false)
  t.equal(isValidId('A-_z9'.repeat(25) + 'abc'), true, '128 characters')
  t.equal(isValidId('a'.repeat(129)), false)
  for (const bad of ['a'.repeat(21) + '.', 'a'.repeat(21) + '=', 'a'.repeat(21) + ' ', 'a'.repeat(21) + '*', 'a'.repeat(21) + '\n', 'é'.repeat(22)]) {
    t.equal(isValidId(bad), false, `refused: ${JSON.stringify(bad)}`)
  }
  t.equal(isValidId(undefined), false)
  t.equal(isValidId(Number.MAX_SAFE_INTEGER), false)
  t.equal(isValidId(['a'.repeat(22)]), false)
})

test('storedIdOf: the SHA-256 of the id in base64url with hashIds, the id itself without', async (t) => {
  const id = defaultIdGenerator()
  const hashed = storedIdOf(true)(id)
  t.equal(hashed, createHash('sha256').update(id).digest('base64url'))
  t.equal(hashed.length, 43)
  t.equal(isValidId(hashed), true, 'itself of the id format')
  t.not(hashed, id)
  t.equal(storedIdOf(true)(id), hashed, 'the same every time')
  t.equal(storedIdOf(false)(id), id)
})

test('idsOf: an id with its stored id', async (t) => {
  const id = defaultIdGenerator()
  t.same(idsOf(storedIdOf(true), id), { id, storedId: storedIdOf(true)(id) })
  t.same(idsOf(storedIdOf(false), id), { id, storedId: id })
})
