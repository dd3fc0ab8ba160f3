// The hub's JSON shapes (../shared/DESIGN.md "JSON shapes"; src/fleetwatch/model.py).

export type Kind = 'source' | 'node' | 'process' | 'job'
export const KINDS: readonly Kind[] = ['source', 'node', 'process', 'job']
export const PLURAL = { source: 'sources', node: 'nodes', process: 'processes', job: 'jobs' } as const

export interface ParamSpec {
  name: string
  type: 'string' | 'integer' | 'boolean'
  required: boolean
  choices: string[]
  default: string | number | boolean | null
  title: string
}

export interface ActionSpec {
  name: string
  title: string
  /** Target kinds: source, node, process, group, job. */
  targets: string[]
  /** Destructive or disruptive: ask before running it. */
  confirm: boolean
  params: ParamSpec[]
  hotkey: string | null
  /** For node targets: the node roles (`labels.role`) it applies to; empty or absent = every node. */
  roles?: string[]
}

export type SourceStatus = 'connecting' | 'online' | 'offline' | 'error'

export interface Source {
  id: string
  kind: string
  name: string
  url: string
  status: SourceStatus
  since: number
  error: string | null
  version: string | null
  actions: ActionSpec[]
  info: Record<string, unknown>
  last_seen: number | null
}

export interface Node {
  id: string
  source: string
  name: string
  address: string
  state: string
  since: number
  labels: Record<string, string>
  metrics: Record<string, number>
}

export interface Process {
  id: string
  source: string
  group: string
  name: string
  /** supervisord's own state name: RUNNING, STOPPED, STARTING, BACKOFF, STOPPING, EXITED, FATAL, UNKNOWN. */
  state: string
  pid: number | null
  started: number | null
  stopped: number | null
  exitstatus: number | null
  description: string
  spawnerr: string
  stdout_logfile: string
  stderr_logfile: string
}

export interface Job {
  id: string
  source: string
  client: string
  server: string
  state: 'waiting' | 'running' | 'local' | 'done' | 'failed'
  file: string
  started: number | null
  ended: number | null
  metrics: Record<string, number>
}

export interface EntityOf {
  source: Source
  node: Node
  process: Process
  job: Job
}
export type Entity = Source | Node | Process | Job

export interface Change {
  op: 'put' | 'del'
  kind: Kind
  id: string
  value: Entity | null
}

export interface SnapshotFrame {
  t: 'snapshot'
  seq: number
  name: string
  epoch: string
  sources: Source[]
  nodes: Node[]
  processes: Process[]
  jobs: Job[]
}

export interface DeltaFrame {
  t: 'delta'
  seq: number
  changes: Change[]
}

export interface Note {
  id: string
  ts: number
  severity: 'info' | 'warning' | 'error' | string
  source: string
  subject: { kind: string; id: string }
  title: string
  text: string
  /** Flap detection (issue 12): one `flapping` note updated in place, then one `stable`. */
  kind?: 'flapping' | 'stable' | string
  /** A flapping note's state changes so far. */
  count?: number
  /** When the flapping began (s). */
  since?: number
  /** This frame replaces the note with the same id. */
  updated?: boolean
}

export interface NoteFrame extends Note {
  t: 'note'
}

export interface PongFrame {
  t: 'pong'
  ping: unknown
}

export type Frame = SnapshotFrame | DeltaFrame | NoteFrame | PongFrame

export interface Target {
  kind: string
  id: string
}

export interface ActionResult {
  ok: boolean
  error: string | null
  detail: unknown
}

/** `GET /api/processes/{id}/log`: bytes [offset, end) of the log, decoded; `size` is the file's. */
export interface LogChunk {
  text: string
  offset: number
  end: number
  size: number
  /** The requested offset lay past the end: the log was rotated or cleared. */
  reset: boolean
}
