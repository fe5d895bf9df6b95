// Checked by `tsc --noEmit`, never run: the implementation in lib/ and the published declarations
// in types/index.d.ts must describe the same exports.
import * as lib from '../../lib/index.js'
import type * as published from 'fastify-session-redis'

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false

export const sameErrorCodes: Same<keyof typeof lib.errors, keyof typeof published.errors> = true
export const errors: typeof published.errors = lib.errors
export const plugin: typeof published.redisSession = lib.redisSession
export const defaultExport: typeof published.default = lib.default
export const channels: typeof published.channels = lib.channels
export const typeBuilder: typeof published.Type = lib.Type
