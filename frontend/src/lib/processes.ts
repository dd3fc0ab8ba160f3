// Pure helpers of the Processes view: sorting, grouping into header + row items, selection,
// uptime and the `state:` chips. No Vue, no DOM: the view feeds them plain data.

import type { Process, Source } from './types'

// -- states ------------------------------------------------------------------------------

/** supervisord's states, worst first (the order of chips and of the state sort). */
export const STATES = ['FATAL', 'BACKOFF', 'UNKNOWN', 'EXITED', 'STOPPING', 'STARTING', 'STOPPED', 'RUNNING'] as const

const STATE_RANK = new Map<string, number>(STATES.map((s, i) => [s, i]))

export function stateRank(state: string): number {
  return STATE_RANK.get(state) ?? -1
}

/** States in which the process has (or is about to have) a pid: `stop` applies, `start` not. */
const LIVE = new Set(['RUNNING', 'STARTING', 'BACKOFF', 'STOPPING'])
/** States in which the process is alive and `started` is its start time. */
const UP = new Set(['RUNNING', 'STOPPING'])

export function isLive(state: string): boolean {
  return LIVE.has(state)
}

export function isUp(state: string): boolean {
  return UP.has(state)
}

// -- time --------------------------------------------------------------------------------

/** `source.info.clock_offset` (hub clock minus daemon clock, seconds), 0 when absent. */
export function clockOffset(source: Source | undefined): number {
  const v = source?.info?.clock_offset
  return typeof v === 'number' && Number.isFinite(v) ? v : 0
}

/**
 * Seconds the process has been up at `nowMs` (the browser's clock, taken as the hub's), or
 * null when it is not up. `started` is on the daemon's clock, so the hub's view of it is
 * `started + clock_offset`.
 */
export function uptimeSeconds(p: Process, source: Source | undefined, nowMs: number): number | null {
  if (!isUp(p.state) || !p.started) return null
  return Math.max(0, nowMs / 1000 - (p.started + clockOffset(source)))
}

/** Seconds since the process stopped (for stopped / exited / fatal), or null. */
export function downSeconds(p: Process, source: Source | undefined, nowMs: number): number | null {
  if (isLive(p.state) || !p.stopped) return null
  return Math.max(0, nowMs / 1000 - (p.stopped + clockOffset(source)))
}

const SUPERVISOR_RUNNING = /^pid (\d+), uptime (?:\d+ days?, )?\d+:\d\d:\d\d$/

/**
 * The description to show: supervisord's own "pid N, uptime H:MM:SS" is a snapshot taken
 * when the state last changed, so it is redrawn with the live uptime; anything else as is.
 */
/**
 * The Description column: supervisord's description only where it adds to the PID and
 * uptime columns beside it (issue 12). A running process's "pid N, uptime H:MM:SS" says
 * nothing more, so the cell is empty; a spawn error, "Exited too quickly (process log may
 * have details)", a stop time or "Not started" are kept.
 */
export function addedDescription(p: Process): string {
  if (p.spawnerr) return p.spawnerr
  if (SUPERVISOR_RUNNING.test(p.description)) return ''
  return p.description
}

/**
 * When the process last stopped, if that means something: not for a process that never
 * stopped (supervisord reports 0), nor, for a running one, a stop time at or after its
 * current start (what a process that never stopped showed as "Stopped").
 */
export function meaningfulStop(p: Pick<Process, 'state' | 'started' | 'stopped'>): number | null {
  if (!p.stopped) return null
  if (RUNNING_LIKE.has(p.state) && (!p.started || p.stopped >= p.started)) return null
  return p.stopped
}

const RUNNING_LIKE = new Set(['STARTING', 'RUNNING', 'BACKOFF', 'STOPPING'])

// -- sorting -----------------------------------------------------------------------------

export type SortKey = 'state' | 'name' | 'group' | 'source' | 'pid' | 'uptime' | 'description'
export const SORT_KEYS: readonly SortKey[] = ['state', 'name', 'group', 'source', 'pid', 'uptime', 'description']

export interface SortSpec {
  key: SortKey
  dir: 1 | -1
}

export const DEFAULT_SORT: SortSpec = { key: 'name', dir: 1 }

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' })

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57
}

/**
 * Natural, case-insensitive text order ("worker_2" before "worker_10", "Web" next to "web").
 * A hand-written fast path for ASCII (sorting 10,000 rows calls this ~150,000 times); the
 * first non-ASCII difference is left to Intl.Collator. Total: strings that only differ in
 * case or leading zeros are ordered by code unit.
 */
export function compareText(a: string, b: string): number {
  if (a === b) return 0
  const la = a.length
  const lb = b.length
  let i = 0
  let j = 0
  while (i < la && j < lb) {
    let ca = a.charCodeAt(i)
    let cb = b.charCodeAt(j)
    if (isDigit(ca) && isDigit(cb)) {
      let si = i
      while (si < la && a.charCodeAt(si) === 48) si++
      let sj = j
      while (sj < lb && b.charCodeAt(sj) === 48) sj++
      let ei = si
      while (ei < la && isDigit(a.charCodeAt(ei))) ei++
      let ej = sj
      while (ej < lb && isDigit(b.charCodeAt(ej))) ej++
      const byLength = ei - si - (ej - sj)
      if (byLength) return byLength
      for (let k = 0; k < ei - si; k++) {
        const d = a.charCodeAt(si + k) - b.charCodeAt(sj + k)
        if (d) return d
      }
      i = ei
      j = ej
      continue
    }
    if (ca !== cb) {
      if (ca >= 65 && ca <= 90) ca += 32
      if (cb >= 65 && cb <= 90) cb += 32
      if (ca !== cb) {
        if (ca < 128 && cb < 128) return ca - cb
        const c = collator.compare(a.slice(i), b.slice(j))
        if (c) return c
        return a < b ? -1 : 1
      }
    }
    i++
    j++
  }
  return la - i - (lb - j) || (a < b ? -1 : 1)
}

/** Numbers in `dir` order, nulls last whatever the direction. */
function compareNullable(a: number | null, b: number | null, dir: 1 | -1): number {
  if (a === null && b === null) return 0
  if (a === null) return 1
  if (b === null) return -1
  return (a - b) * dir
}

/** Comparator for a sort spec; ties are broken by id so the order is total and stable. */
export function comparator(sort: SortSpec): (a: Process, b: Process) => number {
  const { key, dir } = sort
  const tie = (a: Process, b: Process) => compareText(a.id, b.id)
  switch (key) {
    case 'pid':
      return (a, b) => compareNullable(a.pid || null, b.pid || null, dir) || tie(a, b)
    case 'uptime':
      // Ascending = shortest uptime first = latest start first; processes not up go last.
      return (a, b) =>
        compareNullable(isUp(a.state) ? a.started : null, isUp(b.state) ? b.started : null, (dir * -1) as 1 | -1) ||
        tie(a, b)
    case 'state':
      return (a, b) => (stateRank(a.state) - stateRank(b.state)) * dir || compareText(a.name, b.name) || tie(a, b)
    case 'description':
      return (a, b) => compareText(a.spawnerr || a.description, b.spawnerr || b.description) * dir || tie(a, b)
    default:
      return (a, b) => compareText(a[key], b[key]) * dir || tie(a, b)
  }
}

export function sortProcesses(list: readonly Process[], sort: SortSpec): Process[] {
  return list.slice().sort(comparator(sort))
}

/** Clicking a column header: same column flips the direction, another starts ascending. */
export function nextSort(current: SortSpec, key: SortKey): SortSpec {
  return current.key === key ? { key, dir: current.dir === 1 ? -1 : 1 } : { key, dir: 1 }
}

export function parseSort(raw: string | null): SortSpec {
  if (!raw) return DEFAULT_SORT
  const [key, dir] = raw.split(':')
  if (!(SORT_KEYS as readonly string[]).includes(key)) return DEFAULT_SORT
  return { key: key as SortKey, dir: dir === 'desc' ? -1 : 1 }
}

export function formatSort(sort: SortSpec): string {
  return `${sort.key}:${sort.dir === 1 ? 'asc' : 'desc'}`
}

// -- grouping ----------------------------------------------------------------------------

export type GroupBy = 'none' | 'source' | 'group'
export const GROUP_BYS: readonly GroupBy[] = ['none', 'source', 'group']

export function parseGroupBy(raw: string | null): GroupBy {
  return (GROUP_BYS as readonly string[]).includes(raw ?? '') ? (raw as GroupBy) : 'source'
}

export interface HeaderItem {
  type: 'header'
  /** `source:sv1` or `group:web`: stable across repaints, used for collapsing. */
  key: string
  by: 'source' | 'group'
  /** The source id or the group name. */
  value: string
  /** Ids of the (filtered) processes under this header, in display order. */
  ids: string[]
  /** Counts by state, worst state first. */
  counts: [string, number][]
  collapsed: boolean
}

export interface RowItem {
  type: 'row'
  key: string
  process: Process
  /** The header this row sits under (null when not grouped). */
  header: string | null
}

export type Item = HeaderItem | RowItem

export function headerKey(by: 'source' | 'group', value: string): string {
  return `${by}:${value}`
}

/** Counts by state, ordered worst first (unknown states after the known ones, by name). */
export function countStates(list: Iterable<{ state: string }>): [string, number][] {
  const counts = new Map<string, number>()
  for (const p of list) counts.set(p.state, (counts.get(p.state) ?? 0) + 1)
  return Array.from(counts).sort(
    ([a], [b]) => (stateRank(a) === -1 ? 99 : stateRank(a)) - (stateRank(b) === -1 ? 99 : stateRank(b)) || compareText(a, b),
  )
}

/**
 * The table's items: with grouping, one header per source (or group) followed by its rows
 * in `sorted` order (none when collapsed). Groups come in natural order of their value;
 * `extraGroups` adds headers with no matching rows (an offline source with no processes).
 */
export function buildItems(
  sorted: readonly Process[],
  groupBy: GroupBy,
  collapsed: ReadonlySet<string> = new Set(),
  extraGroups: readonly string[] = [],
): Item[] {
  if (groupBy === 'none') return sorted.map((p) => ({ type: 'row', key: p.id, process: p, header: null }))
  const by = groupBy
  const buckets = new Map<string, Process[]>()
  for (const g of extraGroups) buckets.set(g, [])
  for (const p of sorted) {
    const v = by === 'source' ? p.source : p.group
    let bucket = buckets.get(v)
    if (!bucket) buckets.set(v, (bucket = []))
    bucket.push(p)
  }
  const out: Item[] = []
  for (const value of Array.from(buckets.keys()).sort(compareText)) {
    const rows = buckets.get(value) ?? []
    const key = headerKey(by, value)
    const isCollapsed = collapsed.has(key)
    out.push({
      type: 'header',
      key,
      by,
      value,
      ids: rows.map((p) => p.id),
      counts: countStates(rows),
      collapsed: isCollapsed,
    })
    if (!isCollapsed) for (const p of rows) out.push({ type: 'row', key: p.id, process: p, header: key })
  }
  return out
}

// -- selection ---------------------------------------------------------------------------

/** A new set with `id` flipped (or set to `on`). */
export function toggle(sel: ReadonlySet<string>, id: string, on = !sel.has(id)): Set<string> {
  const out = new Set(sel)
  if (on) out.add(id)
  else out.delete(id)
  return out
}

/** A new set with every id in `ids` added (on) or removed (off). */
export function setMany(sel: ReadonlySet<string>, ids: Iterable<string>, on: boolean): Set<string> {
  const out = new Set(sel)
  for (const id of ids) {
    if (on) out.add(id)
    else out.delete(id)
  }
  return out
}

/**
 * Shift-click: set every id of `order` between `anchor` and `id` (both included) to `on`.
 * Without an anchor (or one no longer in `order`) only `id` changes.
 */
export function selectRange(
  sel: ReadonlySet<string>,
  order: readonly string[],
  anchor: string | null,
  id: string,
  on: boolean,
): Set<string> {
  const to = order.indexOf(id)
  const from = anchor === null ? -1 : order.indexOf(anchor)
  if (to < 0) return new Set(sel)
  if (from < 0) return toggle(sel, id, on)
  const [lo, hi] = from < to ? [from, to] : [to, from]
  return setMany(sel, order.slice(lo, hi + 1), on)
}

/** 'all' | 'some' | 'none' of `ids` selected (for a header or select-all checkbox). */
export function coverage(sel: ReadonlySet<string>, ids: readonly string[]): 'all' | 'some' | 'none' {
  if (ids.length === 0 || sel.size === 0) return 'none'
  let n = 0
  for (const id of ids) if (sel.has(id)) n += 1
  return n === 0 ? 'none' : n === ids.length ? 'all' : 'some'
}

/** Select-all: selects every id of `ids` (the rows that match the filter), or clears them when all already are. */
export function toggleAll(sel: ReadonlySet<string>, ids: readonly string[]): Set<string> {
  return setMany(sel, ids, coverage(sel, ids) !== 'all')
}

/** Drop ids that no longer exist (a process removed by `update`). Returns `sel` itself when nothing changed. */
export function prune<T extends ReadonlySet<string>>(sel: T, exists: (id: string) => boolean): T | Set<string> {
  for (const id of sel) {
    if (!exists(id)) return new Set(Array.from(sel).filter(exists))
  }
  return sel
}

/** Move a cursor over the row items by `delta`; from nowhere, start at the first (or last) row. */
export function moveCursor(rowIds: readonly string[], cursor: string | null, delta: number): string | null {
  if (rowIds.length === 0) return null
  const at = cursor === null ? -1 : rowIds.indexOf(cursor)
  if (at < 0) return delta >= 0 ? rowIds[0] : rowIds[rowIds.length - 1]
  return rowIds[Math.min(rowIds.length - 1, Math.max(0, at + delta))]
}

// -- the state: word of a filter -----------------------------------------------------------

const WORD = /(?:[^ \t\n\v\f\r"]|"[^"]*"?)+/g

/** The filter's words (the grammar's own word rule). */
export function words(query: string): string[] {
  return query.match(WORD) ?? []
}

function isStateWord(word: string): boolean {
  const colon = word.indexOf(':')
  const quote = word.indexOf('"')
  if (colon <= 0 || (quote >= 0 && quote < colon)) return false
  return word.slice(0, colon).toLowerCase() === 'state'
}

/** The states a query's (first, positive) `state:` word asks for, lowercased; [] when none. */
export function stateFilter(query: string): string[] {
  const w = words(query).find(isStateWord)
  if (!w) return []
  return w
    .slice(w.indexOf(':') + 1)
    .replace(/"/g, '')
    .split(',')
    .filter(Boolean)
    .map((s) => s.toLowerCase())
}

/** The query with its positive `state:` words replaced by `state:<state>` (or removed when null). */
export function withState(query: string, state: string | null): string {
  const kept = words(query).filter((w) => !isStateWord(w))
  if (state) kept.push(`state:${state.toLowerCase()}`)
  return kept.join(' ')
}

/** The query without its positive `state:` words (to count what each chip would show). */
export function withoutState(query: string): string {
  return withState(query, null)
}
