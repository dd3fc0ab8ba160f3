// The cluster graph's data, kept apart from the drawing: hosts become simulation nodes and
// running remote jobs become links (client → server).  `updateGraph` reuses the node objects
// of the previous graph, so d3-force keeps their positions, velocities and pins, and the
// simulation does not jump when the store changes.

import type { SimulationLinkDatum, SimulationNodeDatum } from 'd3-force'
import type { Job, Node } from './types'

export interface GraphNode extends SimulationNodeDatum {
  /** The node id (`SOURCE/NAME`). */
  id: string
  source: string
  name: string
  /** Job slots (max_jobs, never below 0). */
  slots: number
  /** Jobs running on it now (the scheduler's count). */
  used: number
  /** 0–1000 per mille. */
  load: number
  blocked: boolean
  noRemote: boolean
  /** Jobs it runs for itself now: local jobs, and remote jobs it was picked to build itself. */
  local: number
  r: number
  fill: string
  host: Node
}

export interface GraphLink extends SimulationLinkDatum<GraphNode> {
  /** The job id. */
  id: string
  source: GraphNode
  target: GraphNode
  job: Job
  /** Index of this link among the links between the same two hosts (either way), and how many there are. */
  lane: number
  lanes: number
}

export interface Graph {
  nodes: GraphNode[]
  links: GraphLink[]
}

export interface GraphUpdate extends Graph {
  /** Ids of hosts that were not in the previous graph. */
  added: string[]
  /** Ids of hosts that left. */
  removed: string[]
}

export const MIN_RADIUS = 12
export const MAX_RADIUS = 44

/** Radius for a host with `slots` job slots: grows with the area (√), monotonic, capped. */
export function radiusFor(slots: number): number {
  const s = Number.isFinite(slots) && slots > 0 ? slots : 0
  return Math.min(MAX_RADIUS, MIN_RADIUS + 6 * Math.sqrt(s))
}

/** Hue for a load in ‰: 130 (green) at 0, 40 (amber) at 500, 0 (red) at 1000 and above. */
export function loadHue(load: number): number {
  const l = Math.max(0, Math.min(1000, Number.isFinite(load) ? load : 0)) / 1000
  return l <= 0.5 ? 130 - (l / 0.5) * 90 : 40 - ((l - 0.5) / 0.5) * 40
}

/** Fill colour for a load in ‰ (green → amber → red). */
export function loadColor(load: number): string {
  return `hsl(${Math.round(loadHue(load))} 68% 46%)`
}

export const BLOCKED_FILL = 'hsl(215 10% 55%)'

/** The node id of host `name` of icecream source `source`. */
export function hostId(source: string, name: string): string {
  return `${source}/${name}`
}

/** Where a new node starts: on a small circle around `center`, spread by a golden angle. */
function seat(i: number, center: { x: number; y: number }): { x: number; y: number } {
  const angle = i * 2.399963229728653
  const dist = 30 + 12 * Math.sqrt(i)
  return { x: center.x + dist * Math.cos(angle), y: center.y + dist * Math.sin(angle) }
}

export interface UpdateOptions {
  /** Where new hosts without a neighbour start (per source, else this). */
  center?: { x: number; y: number }
  anchors?: Map<string, { x: number; y: number }>
}

/**
 * The graph for `hosts` and `jobs`, reusing `prev`'s node objects (positions, velocities,
 * fx/fy pins) for hosts that are still there.  Links are made for running jobs whose client
 * and server are both known hosts of the same source and differ; a job a host runs for
 * itself (state `local`, or running with client = server) counts in that host's `local`.
 */
export function updateGraph(prev: Graph | null, hosts: Node[], jobs: Job[], opts: UpdateOptions = {}): GraphUpdate {
  const old = new Map<string, GraphNode>()
  for (const n of prev?.nodes ?? []) old.set(n.id, n)
  const center = opts.center ?? { x: 0, y: 0 }

  const nodes: GraphNode[] = []
  const byId = new Map<string, GraphNode>()
  const added: string[] = []
  let fresh = 0
  for (const host of hosts) {
    const slots = Math.max(0, host.metrics.max_jobs ?? 0)
    const load = host.metrics.load ?? 0
    const blocked = host.state === 'blocked'
    let n = old.get(host.id)
    if (!n) {
      const at = seat(old.size + fresh++, opts.anchors?.get(host.source) ?? center)
      n = {
        id: host.id,
        source: host.source,
        name: host.name,
        slots: 0,
        used: 0,
        load: 0,
        blocked: false,
        noRemote: false,
        local: 0,
        r: 0,
        fill: '',
        host,
        x: at.x,
        y: at.y,
      }
      added.push(host.id)
    }
    n.host = host
    n.name = host.name
    n.source = host.source
    n.slots = slots
    n.used = Math.max(0, host.metrics.jobs ?? 0)
    n.load = load
    n.blocked = blocked
    n.noRemote = host.labels.no_remote === 'true'
    n.local = 0
    n.r = radiusFor(slots)
    n.fill = blocked ? BLOCKED_FILL : loadColor(load)
    nodes.push(n)
    byId.set(n.id, n)
  }
  const removed = [...old.keys()].filter((id) => !byId.has(id))

  const links: GraphLink[] = []
  const pairs = new Map<string, GraphLink[]>()
  for (const job of jobs) {
    if (job.state !== 'running' && job.state !== 'local') continue
    const client = byId.get(hostId(job.source, job.client))
    const server = byId.get(hostId(job.source, job.server))
    if (job.state === 'local' || job.client === job.server) {
      const host = server ?? client
      if (host) host.local += 1
      continue
    }
    if (!client || !server) continue
    const link: GraphLink = { id: job.id, source: client, target: server, job, lane: 0, lanes: 1 }
    links.push(link)
    const key = client.id < server.id ? `${client.id}\n${server.id}` : `${server.id}\n${client.id}`
    const list = pairs.get(key)
    if (list) list.push(link)
    else pairs.set(key, [link])
  }
  for (const list of pairs.values()) {
    list.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    list.forEach((l, i) => {
      l.lane = i
      l.lanes = list.length
    })
  }
  return { nodes, links, added, removed }
}

/** Anchor points for each source's hosts: the centre for one source, a circle for more. */
export function clusterAnchors(
  sources: string[],
  width: number,
  height: number,
): Map<string, { x: number; y: number }> {
  const out = new Map<string, { x: number; y: number }>()
  const cx = width / 2
  const cy = height / 2
  if (sources.length <= 1) {
    for (const s of sources) out.set(s, { x: cx, y: cy })
    return out
  }
  const r = Math.min(width, height) * 0.28
  sources.forEach((s, i) => {
    const a = (i / sources.length) * 2 * Math.PI - Math.PI / 2
    out.set(s, { x: cx + r * Math.cos(a), y: cy + r * Math.sin(a) })
  })
  return out
}

/**
 * The SVG path of a link: a straight line for a lone link, arcs bowing apart when several
 * jobs run between the same two hosts; it starts and ends at the circles' rims.
 */
export function linkPath(l: GraphLink, arrowGap = 6): string {
  const sx = l.source.x ?? 0
  const sy = l.source.y ?? 0
  const tx = l.target.x ?? 0
  const ty = l.target.y ?? 0
  const dx = tx - sx
  const dy = ty - sy
  const len = Math.hypot(dx, dy) || 1
  const ux = dx / len
  const uy = dy / len
  // Perpendicular bow: lanes spread symmetrically around the straight line; the sign is
  // fixed by the ordered pair so A→B and B→A bow apart rather than overlapping.
  const flip = l.source.id < l.target.id ? 1 : -1
  const bow = (l.lane - (l.lanes - 1) / 2) * 18 * flip
  const mx = (sx + tx) / 2 - uy * bow
  const my = (sy + ty) / 2 + ux * bow
  const a = trim(sx, sy, mx, my, l.source.r + 2)
  const b = trim(tx, ty, mx, my, l.target.r + 2 + arrowGap)
  if (bow === 0) return `M${a.x.toFixed(1)},${a.y.toFixed(1)}L${b.x.toFixed(1)},${b.y.toFixed(1)}`
  return `M${a.x.toFixed(1)},${a.y.toFixed(1)}Q${mx.toFixed(1)},${my.toFixed(1)} ${b.x.toFixed(1)},${b.y.toFixed(1)}`
}

function trim(x: number, y: number, towardX: number, towardY: number, by: number): { x: number; y: number } {
  const dx = towardX - x
  const dy = towardY - y
  const len = Math.hypot(dx, dy) || 1
  return { x: x + (dx / len) * by, y: y + (dy / len) * by }
}

/** The bounding box of the nodes (with their radii and name labels), or null without nodes. */
export function bounds(nodes: GraphNode[]): { x0: number; y0: number; x1: number; y1: number } | null {
  if (nodes.length === 0) return null
  let x0 = Infinity
  let y0 = Infinity
  let x1 = -Infinity
  let y1 = -Infinity
  for (const n of nodes) {
    const x = n.x ?? 0
    const y = n.y ?? 0
    // Labels sit under the node, about 7 px a character at 12 px.
    const half = Math.max(n.r + 5, n.name.length * 3.6)
    x0 = Math.min(x0, x - half)
    y0 = Math.min(y0, y - n.r - 5)
    x1 = Math.max(x1, x + half)
    y1 = Math.max(y1, y + n.r + 24)
  }
  return { x0, y0, x1, y1 }
}

// -- icemon's star view (issue 12) --------------------------------------------------------

/**
 * Fill for a host by its slot use (jobs running / job slots): a calm blue when idle, green
 * while it has free slots, amber when full. Machine load is a separate ring (loadColor):
 * an idle host on a loaded machine is no longer red.
 */
export function slotColor(used: number, slots: number): string {
  if (slots <= 0) return 'hsl(215 12% 62%)'
  const f = Math.max(0, Math.min(1, used / slots))
  if (f === 0) return 'hsl(205 45% 62%)'
  return `hsl(${Math.round(140 - f * 100)} 62% 44%)`
}

/** The fill of a node in the chosen colouring. */
export function nodeFill(n: Pick<GraphNode, 'blocked' | 'used' | 'slots' | 'load'>, by: 'slots' | 'load'): string {
  if (n.blocked) return BLOCKED_FILL
  return by === 'slots' ? slotColor(n.used, n.slots) : loadColor(n.load)
}

/** A scheduler at the centre of its cluster (one per icecream source). */
export interface SchedulerNode {
  id: string
  source: string
  label: string
  x: number
  y: number
}

/** The schedulers of `sources`, each at its cluster's anchor. */
export function schedulers(
  sources: { id: string; name: string; address?: string }[],
  anchors: Map<string, { x: number; y: number }>,
): SchedulerNode[] {
  return sources
    .filter((s) => anchors.has(s.id))
    .map((s) => {
      const a = anchors.get(s.id) as { x: number; y: number }
      return { id: `scheduler:${s.id}`, source: s.id, label: sources.length > 1 ? s.name : s.address || s.name, x: a.x, y: a.y }
    })
}

/** How far from its scheduler a cluster's hosts sit: spread over the canvas, not huddled. */
export function starRadius(hosts: number, clusters: number, width: number, height: number): number {
  const room = Math.min(width, height) * (clusters > 1 ? 0.2 : 0.36)
  return Math.max(90, Math.min(room, 60 + hosts * 22))
}

/** The label of a job edge: its file's base name; lane 0 of several carries the count. */
export function edgeLabel(l: Pick<GraphLink, 'lane' | 'lanes' | 'job'>): string | null {
  const base = l.job.file ? l.job.file.slice(l.job.file.lastIndexOf('/') + 1) : l.job.id
  if (l.lanes <= 1) return base
  return l.lane === 0 ? `${l.lanes} jobs · ${base}` : null
}
