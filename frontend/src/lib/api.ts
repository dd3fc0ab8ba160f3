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
    response = await fetch(apiUrl('api/actions'), {
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
  const response = await fetch(apiUrl(`api/processes/${encodeURIComponent(id)}/log?${params}`))
  return json<LogChunk>(response)
}

export async function fetchNotes(limit = 500): Promise<Note[]> {
  return json<Note[]>(await fetch(apiUrl(`api/notifications?limit=${limit}`)))
}
