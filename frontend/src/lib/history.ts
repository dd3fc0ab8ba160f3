// Time travel (issue 13): the fleet as it was at a moment, from the hub's history
// (`GET /api/history...`, /work/HISTORY-API.md), and a process's state history as segments.
import { setReadOnly } from './actions'
import { ApiError, hubFetch } from './api'
import { fleet } from './fleet'
import type { Process, SnapshotFrame } from './types'

export interface HistoryInfo {
  enabled: boolean
  backend: string
  first: number | null
  last: number | null
  events: number
  snapshots: number
}

export interface StateChange {
  ts: number
  state: string
}

export interface ProcessHistory {
  id: string
  since: number
  until: number
  initial: Process | null
  changes: StateChange[]
}

export interface Segment {
  state: string
  from: number
  to: number
}

async function getJson<T>(path: string): Promise<T> {
  const r = await hubFetch(path)
  let body: unknown = null
  try {
    body = await r.json()
  } catch {
    body = null
  }
  if (!r.ok) {
    const text = body && typeof body === 'object' && 'error' in body ? String((body as { error: unknown }).error) : `HTTP ${r.status}`
    throw new ApiError(r.status, text)
  }
  return body as T
}

/** The history's bounds, or null when the hub keeps none (404). */
export async function historyInfo(): Promise<HistoryInfo | null> {
  try {
    return await getJson<HistoryInfo>('api/history')
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return null
    throw e
  }
}

export function fleetAt(at: number): Promise<SnapshotFrame & { at: number }> {
  return getJson(`api/history/fleet?at=${encodeURIComponent(at.toFixed(3))}`)
}

export function processHistory(id: string, since: number, until: number): Promise<ProcessHistory> {
  return getJson(`api/history/processes/${encodeURIComponent(id)}?since=${since.toFixed(3)}&until=${until.toFixed(3)}`)
}

/**
 * The strip's segments over [since, until]: the state at `since` (from `initial`, or the
 * first change's state going back to unknown), then one segment per change, oldest first;
 * adjacent segments of the same state merge, and none is outside the range.
 */
export function segments(h: Pick<ProcessHistory, 'since' | 'until' | 'initial' | 'changes'>): Segment[] {
  const out: Segment[] = []
  let state = h.initial?.state ?? null
  let from = h.since
  for (const c of [...h.changes].sort((a, b) => a.ts - b.ts)) {
    const ts = Math.min(Math.max(c.ts, h.since), h.until)
    if (state !== null && ts > from) push(out, state, from, ts)
    if (state === null && ts > from) push(out, 'none', from, ts)
    state = c.state
    from = ts
  }
  if (h.until > from) push(out, state ?? 'none', from, h.until)
  return out
}

function push(out: Segment[], state: string, from: number, to: number): void {
  const last = out[out.length - 1]
  if (last && last.state === state && last.to === from) last.to = to
  else out.push({ state, from, to })
}

/** A time typed or linked: Unix seconds, or an ISO date-time (local time when no zone). */
export function parseAt(text: string | null | undefined): number | null {
  if (!text) return null
  const t = text.trim()
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t)
  const ms = Date.parse(t)
  return Number.isFinite(ms) ? ms / 1000 : null
}

/** `at=` for the URL: whole seconds, readable as a number. */
export function formatAt(at: number): string {
  return String(Math.round(at))
}

/** For a `datetime-local` input, in local time. */
export function toLocalInput(at: number): string {
  const d = new Date(at * 1000)
  const pad = (n: number) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
}

// -- the page's travel: one at a time, the newest request wins ---------------------------

let asked = 0

/** Show the fleet at `at`; false (and the view unchanged) when the history has nothing then. */
export async function travelTo(at: number): Promise<boolean> {
  const mine = ++asked
  const frame = await fleetAt(at)
  if (mine !== asked) return false
  fleet.showPast(frame, frame.at ?? at)
  return true
}

export function backToLive(): void {
  asked++
  fleet.showLive()
}

// Read-only while the past is shown: no button, menu or hot-key acts (lib/actions.ts).
setReadOnly(() => fleet.past.value !== null)
