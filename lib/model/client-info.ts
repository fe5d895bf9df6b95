import type { SessionOrigin } from '../../types/index.js'
import type { DocumentMeta, SessionDocument } from './document.js'

const MAX_USER_AGENT = 256

/** `trackClient`: the client ip and user agent of this request (or origin) that the document does not hold yet. */
export function clientChanges (doc: SessionDocument, request: SessionOrigin): DocumentMeta {
  const fields: DocumentMeta = {}
  const ua = request.headers['user-agent']?.slice(0, MAX_USER_AGENT)
  if (doc.ip !== request.ip) fields.ip = request.ip
  if (doc.ua !== ua) fields.ua = ua
  return fields
}
