import { test } from 'tap'
import { SessionMoved, aliasText, isAlias, successorOf } from '../../lib/model/alias.js'
import { defaultIdGenerator } from '../../lib/model/ids.js'
import { newDocument, serializeDocument } from '../../lib/model/document.js'

// The alias a rotated-away id's key holds: it names the successor to the client holding the old
// id, and to nobody else.

const UNTIL = 1_700_000_030_000

test('an alias names its successor, sealed with the old id', async (t) => {
  const oldId = defaultIdGenerator()
  const newId = defaultIdGenerator()
  const alias = aliasText(oldId, newId, UNTIL)
  t.match(alias, /^\{"moved":"[A-Za-z0-9_-]+","until":1700000030000\}$/, 'the format the save script recognises')
  t.notMatch(alias, newId, 'the new id is not in it')
  t.equal(isAlias(alias), true)
  t.same(successorOf(alias, oldId), { id: newId, until: UNTIL })
})

test('only the old id opens an alias', async (t) => {
  const oldId = defaultIdGenerator()
  const alias = aliasText(oldId, defaultIdGenerator(), UNTIL)
  t.equal(successorOf(alias, defaultIdGenerator()), undefined, 'another id reads no id of the format')
  t.not(aliasText(defaultIdGenerator(), 'x'.repeat(43), UNTIL), aliasText(defaultIdGenerator(), 'x'.repeat(43), UNTIL), 'the same successor sealed under two old ids')
})

test('what is no alias', async (t) => {
  const id = defaultIdGenerator()
  const document = serializeDocument({ ...newDocument(UNTIL, 60), v: 1 })
  t.equal(isAlias(document), false, 'a session document')
  t.equal(successorOf(document, id), undefined)
  t.equal(successorOf('{"moved":"abc"}', id), undefined, 'no until')
  t.equal(successorOf('{"moved":"a.b","until":1}', id), undefined, 'not base64url')
  t.equal(successorOf(aliasText(id, defaultIdGenerator(), UNTIL) + ' ', id), undefined, 'anything after it')
  t.equal(successorOf(aliasText(id, 'short', UNTIL), id), undefined, 'a successor that is no valid id')
})

test('SessionMoved carries the alias a save found', async (t) => {
  const moved = new SessionMoved('{"moved":"x","until":1}')
  t.ok(moved instanceof Error)
  t.equal(moved.alias, '{"moved":"x","until":1}')
  t.equal(moved.message, 'session moved to a new id')
})
