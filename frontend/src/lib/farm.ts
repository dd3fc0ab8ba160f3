// A piwheels build farm as the farm view draws it: the master node (its stats, queue and
// builds per ABI, disk / memory / swap, load, temperature, paused or not), the build slaves
// sorted as piw-monitor sorts them (ABI, then label), their builds, and the source's actions
// split into the master's and the slaves'.  Pure functions over the store's objects; the
// shapes are the piwheels source's (src/fleetwatch/sources/piwheels/farm.py, its docstring):
//
// - master node `SOURCE:master`: labels role=master, paused="true"|"false", label, os_name,
//   ...; metrics = the numeric STATS fields (disk_size, disk_free, mem_size, ...), plus
//   `queue.ABI` and `builds.ABI`.
// - slave nodes `SOURCE:slave:N`: labels role=slave, label, abi, platform, os_name,
//   os_version, board_revision, board_serial, task ("" when idle), status; metrics
//   clock_skew (s), task_started (Unix s, absent when idle) and its stats numbers.
// - builds: jobs `SOURCE:build:N` (client = the slave's node id, server = the master's).

import { forRole, permitted } from './actions'
import type { ActionSpec, Job, Node, Source } from './types'

export const FARM_KIND = 'piwheels'

/** The piwheels sources, by id. */
export function farmSources(sources: Iterable<Source>): Source[] {
  return [...sources].filter((s) => s.kind === FARM_KIND).sort((a, b) => a.id.localeCompare(b.id))
}

export interface Usage {
  size: number
  free: number
  used: number
  /** Share used, 0..1; null when the size is unknown (0: the master's first STATS). */
  ratio: number | null
}

/** Used / free of a resource from its `PREFIX_size` and `PREFIX_free` metrics; null when absent. */
export function usage(metrics: Record<string, number>, prefix: string): Usage | null {
  const size = metrics[`${prefix}_size`]
  const free = metrics[`${prefix}_free`]
  if (!isNum(size) || !isNum(free)) return null
  const used = Math.max(0, size - free)
  return { size, free, used, ratio: size > 0 ? Math.min(1, used / size) : null }
}

export interface AbiRow {
  abi: string
  /** Builds waiting for a slave of this ABI (`queue.ABI`). */
  queue: number
  /** Builds attempted in the last hour (`builds.ABI`). */
  builds: number
}

/** The per-ABI counters of the master (`queue.ABI`, `builds.ABI`), sorted by ABI. */
export function abiRows(metrics: Record<string, number>): AbiRow[] {
  const rows = new Map<string, AbiRow>()
  for (const [key, value] of Object.entries(metrics)) {
    const dot = key.indexOf('.')
    if (dot < 0 || !isNum(value)) continue
    const what = key.slice(0, dot)
    if (what !== 'queue' && what !== 'builds') continue
    const abi = key.slice(dot + 1)
    let row = rows.get(abi)
    if (!row) rows.set(abi, (row = { abi, queue: 0, builds: 0 }))
    row[what] = value
  }
  return [...rows.values()].sort((a, b) => a.abi.localeCompare(b.abi))
}

export function isMaster(node: Node): boolean {
  return node.labels.role === 'master' || node.id.endsWith(':master')
}
export function isSlave(node: Node): boolean {
  return node.labels.role === 'slave' || /:slave:[^:]+$/.test(node.id)
}

/** The slave's number: the N of `SOURCE:slave:N` (null when not a number). */
export function slaveNumber(id: string): number | null {
  const n = Number(id.slice(id.lastIndexOf(':') + 1))
  return Number.isInteger(n) ? n : null
}

/** When a node came up (Unix s): its `started` / `first_seen` metric or label, else `since`. */
export function upSince(node: Node): number {
  for (const key of ['started', 'first_seen']) {
    const m = node.metrics[key]
    if (isNum(m) && m > 0) return m
    const l = node.labels[key]
    if (l) {
      const t = Date.parse(l)
      if (Number.isFinite(t)) return t / 1000
    }
  }
  return node.since
}

export interface MasterView {
  node: Node
  label: string
  paused: boolean
  abis: AbiRow[]
  queued: number
  builtLastHour: number
  disk: Usage | null
  mem: Usage | null
  swap: Usage | null
  load: number | null
  temp: number | null
  upSince: number
  /** What piw-monitor would colour it yellow for. */
  alerts: string[]
}

export interface SlaveView {
  node: Node
  num: number | null
  label: string
  abi: string
  platform: string
  os: string
  status: string
  /** The build in hand ("" when idle). */
  task: string
  /** Unix s the task started at; null when idle. */
  taskStarted: number | null
  /** Master's clock minus the slave's, seconds; null when unknown. */
  clockSkew: number | null
  upSince: number
  load: number | null
  temp: number | null
  disk: Usage | null
  mem: Usage | null
  swap: Usage | null
  alerts: string[]
}

function pct(u: Usage | null): string {
  return u && u.ratio !== null ? `${Math.round((1 - u.ratio) * 100)} %` : ''
}

/** piw-monitor's "alert" checks: little free disk or memory, swap half used, high load or temperature. */
export function alertsOf(metrics: Record<string, number>, maxTemp: number): string[] {
  const out: string[] = []
  const disk = usage(metrics, 'disk')
  const mem = usage(metrics, 'mem')
  const swap = usage(metrics, 'swap')
  if (disk && disk.ratio !== null && 1 - disk.ratio < 0.1) out.push(`disk ${pct(disk)} free`)
  if (mem && mem.ratio !== null && 1 - mem.ratio < 0.1) out.push(`memory ${pct(mem)} free`)
  if (swap && swap.ratio !== null && 1 - swap.ratio < 0.5) out.push(`swap ${pct(swap)} free`)
  const load = loadOf(metrics)
  if (load !== null && load > 4) out.push(`load ${load.toFixed(2)}`)
  const temp = tempOf(metrics)
  if (temp !== null && temp > maxTemp) out.push(`${temp.toFixed(1)} °C`)
  return out
}

function loadOf(m: Record<string, number>): number | null {
  const v = m.load_average ?? m.load
  return isNum(v) ? v : null
}
function tempOf(m: Record<string, number>): number | null {
  const v = m.cpu_temp ?? m.temperature
  // 0.0 means "no thermal zone" on the wire.
  return isNum(v) && v !== 0 ? v : null
}

/** The source's own alert reasons (label `alert`: "disk,load"), when it gives them. */
function alertLabel(node: Node): string[] | null {
  const a = node.labels.alert
  if (a === undefined) return null
  return a
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)
}

export function masterView(node: Node): MasterView {
  const m = node.metrics
  const abis = abiRows(m)
  return {
    node,
    label: node.labels.label || node.name,
    paused: node.labels.paused === 'true',
    abis,
    queued: abis.reduce((n, a) => n + a.queue, 0),
    builtLastHour: abis.reduce((n, a) => n + a.builds, 0),
    disk: usage(m, 'disk'),
    mem: usage(m, 'mem'),
    swap: usage(m, 'swap'),
    load: loadOf(m),
    temp: tempOf(m),
    upSince: upSince(node),
    alerts: alertLabel(node) ?? alertsOf(m, 70),
  }
}

export function slaveView(node: Node): SlaveView {
  const m = node.metrics
  const l = node.labels
  return {
    node,
    num: slaveNumber(node.id),
    label: l.label || node.name,
    abi: l.abi ?? '',
    platform: l.platform ?? '',
    os: [l.os_name, l.os_version].filter(Boolean).join(' '),
    status: l.status ?? '',
    task: l.task ?? '',
    taskStarted: isNum(m.task_started) ? m.task_started : null,
    clockSkew: isNum(m.clock_skew) ? m.clock_skew : null,
    upSince: upSince(node),
    load: loadOf(m),
    temp: tempOf(m),
    disk: usage(m, 'disk'),
    mem: usage(m, 'mem'),
    swap: usage(m, 'swap'),
    alerts: alertLabel(node) ?? alertsOf(m, 78),
  }
}

/** piw-monitor's order: by ABI, then label, then number. */
export function compareSlaves(a: SlaveView, b: SlaveView): number {
  return a.abi.localeCompare(b.abi) || a.label.localeCompare(b.label) || (a.num ?? 0) - (b.num ?? 0) || a.node.id.localeCompare(b.node.id)
}

export interface Farm {
  source: Source
  master: MasterView | null
  slaves: SlaveView[]
  builds: Job[]
  /** Slaves with a build in hand. */
  busy: number
}

/** One source's farm out of the store's nodes and jobs (of every source). */
export function farmOf(source: Source, nodes: Iterable<Node>, jobs: Iterable<Job>): Farm {
  let master: MasterView | null = null
  const slaves: SlaveView[] = []
  for (const n of nodes) {
    if (n.source !== source.id) continue
    if (isMaster(n)) master = masterView(n)
    else if (isSlave(n)) slaves.push(slaveView(n))
  }
  slaves.sort(compareSlaves)
  const builds = [...jobs].filter((j) => j.source === source.id)
  return { source, master, slaves, builds, busy: slaves.filter((s) => s.task !== '').length }
}

/** Seconds the slave has spent on its task at `nowS` (Unix s); null when idle. */
export function taskSeconds(slave: SlaveView, nowS: number): number | null {
  if (slave.taskStarted === null) return null
  return Math.max(0, nowS - slave.taskStarted)
}

/** "+0.4 s", "−2 min 3 s", "0 s": a clock skew for a table cell. */
export function skewText(seconds: number | null): string {
  if (seconds === null) return '–'
  const a = Math.abs(seconds)
  const sign = seconds > 0 ? '+' : seconds < 0 ? '−' : ''
  if (a < 10) return `${sign}${a.toFixed(1)} s`
  if (a < 60) return `${sign}${Math.round(a)} s`
  const m = Math.floor(a / 60)
  return `${sign}${m} min ${Math.round(a % 60)} s`
}

/** A slave's state for its colour: the node's own state, "alert" when piw-monitor would flag it. */
export function slaveTone(slave: SlaveView): 'bad' | 'warn' | 'busy' | 'idle' {
  const st = slave.node.state
  if (st === 'offline' || st === 'error' || st === 'dead' || st === 'terminating') return 'bad'
  if (slave.alerts.length > 0 || st === 'alert' || st === 'sleeping') return 'warn'
  if (slave.task) return 'busy'
  return 'idle'
}

export interface FarmActions {
  /** The master's actions (sent to the source: pause, resume, stop the slaves, ...). */
  master: ActionSpec[]
  /** The actions offered on a build slave (sent to the slave's node). */
  slave: ActionSpec[]
}

/**
 * The source's actions split as their `roles` say.  The master's are those on the `source`
 * for the `master` role (they act on the master, and through it on every slave).  A slave
 * row offers the `node` actions for the `slave` role (piwheels' resume is for both: WAKE
 * null on the master, WAKE id on a slave); a piwheels master cannot pause one slave, so
 * pause is for the master only.  An action without `roles` is the master's when it acts on
 * the source, and a slave's when it acts on nodes only.
 */
export function farmActions(source: Source | undefined): FarmActions {
  if (!source) return { master: [], slave: [] }
  return {
    master: source.actions.filter((a) => a.targets.includes('source') && forRole(a, 'master') && permitted(a)),
    slave: source.actions.filter(
      (a) =>
        a.targets.includes('node') &&
        permitted(a) &&
        (a.roles?.length ? a.roles.includes('slave') : !a.targets.includes('source')),
    ),
  }
}

/** What a finished build's `metrics.reason` means (the piwheels source's REASONS). */
export const BUILD_REASONS: Readonly<Record<number, string>> = { 0: 'built', 1: 'failed', 2: 'skipped', 3: 'killed', 4: 'lost' }

/** A build's outcome in a word: building while it runs, else its reason ("–" when unknown). */
export function buildResult(job: Job): string {
  if (job.state === 'running') return 'building'
  const r = job.metrics.reason
  return r === undefined ? (job.state === 'done' ? 'built' : job.state === 'failed' ? 'failed' : '–') : (BUILD_REASONS[r] ?? `reason ${r}`)
}

function isNum(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v)
}
