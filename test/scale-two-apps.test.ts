import { test } from 'tap'
import { connect, sharedRedisUrl, uniquePrefix } from './helpers/app.js'
import { coreBehaviours } from './helpers/scale.js'

test('two app instances on one Redis share sessions', async (t) => {
  const url = await sharedRedisUrl()
  await coreBehaviours(t, await connect(t, url), await connect(t, url), uniquePrefix())
})
