// HTTP calls to the hub. Every URL is relative to the page, so the app works under a
// reverse proxy's sub-path (`fleetwatch serve --root-path /fleet/`).

import type { ActionResult, LogChunk, Note, Target } from './types'

/** The directory the page was served from, always ending in `/`. */
export function appBase(loc: { origin: string; pathname: string } = window.location): string {
  let path = loc.pathname
  if (!path.endsWith('/')) {
    const last = path.slice(path.lastIndexOf('/') + 1)
    path = last.includes('.') ? path.slice(0, path.lastIndexOf('/') + 1) : `${path}/`
  }
  return `${loc.origin}${path}`
}

export function apiUrl(path: string, base: string = appBase()): string {
  return new URL(path.replace(/^\//, ''), base).toString()
}

export function streamUrl(base: string = appBase()): string {
  const url = new URL('api/stream', base)
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  return url.toString()
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

// -- the session: CSRF token and "the session ended" ------------------------------------

let csrfToken: string | null = null
let onUnauthorized: (() => void) | null = null

/** The `X-CSRF-Token` a cookie session's state-changing requests send (null: none). */
export function setCsrfToken(token: string | null): void {
  csrfToken = token
}

/** Called when the hub answers 401 to a call made with the session (it ended). */
export function setUnauthorizedHandler(handler: (() => void) | null): void {
  onUnauthorized = handler
}

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/** `fetch` for the hub's API: the CSRF header on state-changing requests; a 401 answer
 * tells the session (`setUnauthorizedHandler`) — except where `quiet401` (login, /api/me). */
export async function hubFetch(path: string, init: RequestInit = {}, quiet401 = false): Promise<Response> {
  const method = (init.method ?? 'GET').toUpperCase()
  const headers = new Headers(init.headers)
  if (csrfToken && STATE_CHANGING.has(method)) headers.set('X-CSRF-Token', csrfToken)
  const response = await fetch(apiUrl(path), { ...init, headers, credentials: 'same-origin' })
  if (response.status === 401 && !quiet401) onUnauthorized?.()
  return response
}

async function json<T>(response: Response): Promise<T> {
  let body: unknown = null
  try {
    body = await response.json()
  } catch {
    body = null
  }
  if (!response.ok) {
    const error =
      body && typeof body === 'object' && 'error' in body ? String((body as { error: unknown }).error) : null
    throw new ApiError(response.status, error ?? `HTTP ${response.status}`)
  }
  return body as T
}

/** Run an action. A refusal (4xx) or a failed action both come back as `{ok: false, error}`. */
export async function runAction(
  target: Target,
  name: string,
  params: Record<string, unknown> = {},
): Promise<ActionResult> {
  let response: Response
  try {
    response = await hubFetch('api/actions', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ target, name, params }),
    })
  } catch (err) {
    return { ok: false, error: `hub unreachable: ${String(err)}`, detail: null }
  }
  let body: Partial<ActionResult> & { error?: string | null } = {}
  try {
    body = await response.json()
  } catch {
    body = {}
  }
  if (!response.ok) {
    return { ok: false, error: body.error ?? `HTTP ${response.status}`, detail: body.detail ?? null }
  }
  return { ok: Boolean(body.ok), error: body.error ?? null, detail: body.detail ?? null }
}

/** A window of a process's log; `offset` omitted reads the tail. */
export async function readLog(
  id: string,
  channel: 'stdout' | 'stderr',
  offset: number | null,
  length = 65536,
): Promise<LogChunk> {
  const params = new URLSearchParams({ channel, length: String(length) })
  if (offset !== null) params.set('offset', String(offset))
  const response = await hubFetch(`api/processes/${encodeURIComponent(id)}/log?${params}`)
  return json<LogChunk>(response)
}

export async function fetchNotes(limit = 500): Promise<Note[]> {
  return json<Note[]>(await hubFetch(`api/notifications?limit=${limit}`))
}

/** One entry of the audit trail (`GET /api/audit`, admin). */
export interface AuditEntry {
  id: number
  ts: number
  user: string
  via: string
  address: string
  what: string
  target: string
  result: string
  error: string | null
  params: Record<string, unknown>
}

export async function fetchAudit(limit = 500): Promise<AuditEntry[]> {
  return json<AuditEntry[]>(await hubFetch(`api/audit?limit=${limit}`))
}
