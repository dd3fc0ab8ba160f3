// The cluster timeline's data: one row group per host, one lane per job slot, bars from a
// job's start to its end (running jobs to "now"), clipped to a time window.  Lanes are
// assigned per host over all of its jobs (not only the visible ones), earliest start first,
// into the lowest lane free at that moment, so overlapping jobs get distinct lanes, a lane
// is reused as soon as its job ended, and a bar keeps its lane while the window slides.

import type { Job } from './types'

export type BarKind = 'running' | 'local' | 'done' | 'failed'

export interface GanttHost {
  /** Node id (`SOURCE/NAME`). */
  id: string
  source: string
  name: string
  slots: number
  state?: string
}

export interface GanttBar {
  id: string
  job: Job
  lane: number
  /** Unix seconds: the job's start and end (end = now while it runs). */
  start: number
  end: number
  /** The same, clipped to the window. */
  from: number
  to: number
  kind: BarKind
  /** Still running (grows with now). */
  live: boolean
}

export interface GanttRow {
  host: GanttHost
  /** Lanes to draw: at least the host's slots, more when it ran more jobs at once. */
  lanes: number
  bars: GanttBar[]
  /** Jobs running on the host now. */
  running: number
  /** The host is not a known host (it left); its jobs still show. */
  gone: boolean
}

export interface GanttWindow {
  /** Unix seconds. */
  from: number
  to: number
}

/** How a finished or running job is drawn. */
export function barKind(job: Job): BarKind {
  if (job.state === 'failed') return 'failed'
  if (job.state === 'local') return 'local'
  if (job.state === 'running' || job.state === 'waiting') return 'running'
  // A finished local job: the submitter ran it itself and the scheduler got no exit code.
  if (job.client === job.server && job.metrics.exitcode === undefined) return 'local'
  return 'done'
}

/** The host a job ran (or runs) on. */
export function jobHost(job: Job): string {
  return job.server || job.client
}

/** When a job ends, as a bar: its end, now while it runs, its start when it has no end. */
function endOf(job: Job, now: number): number {
  if (job.ended !== null && job.ended !== undefined) return Math.max(job.ended, job.started ?? job.ended)
  if (job.state === 'running' || job.state === 'local') return Math.max(now, job.started ?? now)
  return job.started ?? now
}

export interface Placed {
  job: Job
  lane: number
  start: number
  end: number
}

/**
 * Lanes for one host's jobs: earliest start first, each into the lowest lane whose previous
 * job ended at or before this one's start.  Ties in start go by job id, so the result does
 * not depend on the input order.
 */
export function assignLanes(jobs: Job[], now: number): Placed[] {
  const items = jobs
    .filter((j) => j.started !== null && j.started !== undefined)
    .map((job) => ({ job, start: job.started as number, end: endOf(job, now), lane: -1 }))
  items.sort((a, b) => a.start - b.start || compareIds(a.job.id, b.job.id))
  const laneEnds: number[] = []
  for (const it of items) {
    let lane = laneEnds.findIndex((end) => end <= it.start)
    if (lane < 0) {
      lane = laneEnds.length
      laneEnds.push(it.end)
    } else {
      laneEnds[lane] = it.end
    }
    it.lane = lane
  }
  return items
}

/** The N of a job id: `SOURCE#N` (icecream) or `SOURCE:build:N` (piwheels); NaN otherwise. */
export function jobNumber(id: string): number {
  const cut = Math.max(id.lastIndexOf('#'), id.lastIndexOf(':'))
  return cut < 0 ? NaN : Number(id.slice(cut + 1))
}

/** Compare job ids by their numbers when both have them. */
function compareIds(a: string, b: string): number {
  const na = jobNumber(a)
  const nb = jobNumber(b)
  if (Number.isFinite(na) && Number.isFinite(nb) && na !== nb) return na - nb
  return a < b ? -1 : a > b ? 1 : 0
}

/** The row (host id) of an icecream job: `SOURCE/NAME` of the host it ran on. */
export function icecreamRow(job: Job): string {
  return `${job.source}/${jobHost(job)}`
}

/**
 * Rows for `hosts` (in that order; jobs on hosts not in the list get rows of their own at the
 * end, marked `gone`), with the bars that overlap `win`.  `now` (Unix s) is where running
 * jobs end.  Waiting jobs (not started) have no bar.  `rowOf` says which host id a job's bar
 * goes to (icecream's `SOURCE/NAME` of its server by default; a piwheels build's is its
 * slave's node id, its client).
 */
export function buildGantt(
  hosts: GanttHost[],
  jobs: Job[],
  win: GanttWindow,
  now: number,
  rowOf: (job: Job) => string = icecreamRow,
): GanttRow[] {
  const byHost = new Map<string, Job[]>()
  for (const job of jobs) {
    if (job.started === null || job.started === undefined) continue
    const key = rowOf(job)
    const list = byHost.get(key)
    if (list) list.push(job)
    else byHost.set(key, [job])
  }
  const rows: GanttRow[] = []
  const seen = new Set<string>()
  const make = (host: GanttHost, gone: boolean): GanttRow => {
    const placed = assignLanes(byHost.get(host.id) ?? [], now)
    const bars: GanttBar[] = []
    let used = 0
    let running = 0
    for (const p of placed) {
      used = Math.max(used, p.lane + 1)
      const live = p.job.state === 'running' || p.job.state === 'local'
      if (live) running += 1
      if (p.end < win.from || p.start > win.to) continue
      bars.push({
        id: p.job.id,
        job: p.job,
        lane: p.lane,
        start: p.start,
        end: p.end,
        from: Math.max(p.start, win.from),
        to: Math.min(p.end, win.to),
        kind: barKind(p.job),
        live,
      })
    }
    return { host, lanes: Math.max(1, host.slots, used), bars, running, gone }
  }
  for (const host of hosts) {
    seen.add(host.id)
    rows.push(make(host, false))
  }
  const leftovers = [...byHost.keys()].filter((id) => !seen.has(id)).sort()
  for (const id of leftovers) {
    const slash = id.indexOf('/')
    const source = byHost.get(id)?.[0]?.source ?? id.slice(0, Math.max(0, slash))
    const name = slash >= 0 ? id.slice(slash + 1) : id
    const host: GanttHost = { id, source, name, slots: 0 }
    const row = make(host, true)
    if (row.bars.length > 0) rows.push(row)
  }
  return rows
}

/** "Nice" tick positions (Unix s) for a window: steps of 5/10/15/30 s or 1/2/5 min. */
export function timeTicks(win: GanttWindow, maxTicks = 8): number[] {
  const span = win.to - win.from
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600]
  const step = steps.find((s) => span / s <= maxTicks) ?? 3600
  const out: number[] = []
  for (let t = Math.ceil(win.from / step) * step; t <= win.to; t += step) out.push(t)
  return out
}

// -- labels and windows (issue 12) -----------------------------------------------------------

/**
 * `name` cut to `max` characters in the middle, keeping its end: "demo-remote1" and
 * "demo-remote2" stay apart ("demo…ote1"), where an ellipsis at the end made both "demo-re…".
 */
export function middleTruncate(name: string, max: number): string {
  if (name.length <= max || max < 5) return name
  const keepEnd = Math.ceil((max - 1) / 2)
  const keepStart = max - 1 - keepEnd
  return `${name.slice(0, keepStart)}…${name.slice(name.length - keepEnd)}`
}

/** About how many px a label of `text` takes at the bars' 11 px font. */
export function labelWidth(text: string): number {
  return text.length * 6.2 + 8
}

/** A job's file, as a bar shows it: its base name. */
export function fileLabel(file: string): string {
  return file.slice(file.lastIndexOf('/') + 1)
}

/** The windows the timeline offers, and whether the hub's ring of jobs reaches back that far. */
export function windows(jobs: Iterable<{ started: number | null; ended: number | null }>, nowSec: number): { s: number; label: string; covered: boolean }[] {
  let oldest = nowSec
  for (const j of jobs) {
    const t = j.started ?? j.ended
    if (t !== null && t < oldest) oldest = t
  }
  const reach = nowSec - oldest
  return [
    { s: 60, label: '1 min' },
    { s: 300, label: '5 min' },
    { s: 900, label: '15 min' },
    { s: 3600, label: '1 h' },
  ].map((w) => ({ ...w, covered: w.s <= 900 || reach >= w.s * 0.5 }))
}
