import { describe, expect, it } from 'vitest'
import { bounds, clusterAnchors, linkPath, loadColor, loadHue, radiusFor, updateGraph, BLOCKED_FILL } from '../src/lib/graph'
import type { Job, Node } from '../src/lib/types'

function host(name: string, over: Partial<Node> = {}, metrics: Record<string, number> = {}): Node {
  return {
    id: `build/${name}`,
    source: 'build',
    name,
    address: '127.0.0.1',
    state: 'online',
    since: 0,
    labels: { platform: 'x86_64', protocol: '43', features: 'env_xz', no_remote: 'false', hostid: '1' },
    metrics: { max_jobs: 4, load: 100, jobs: 0, ...metrics },
    ...over,
  }
}

function job(id: number, client: string, server: string, state: Job['state'], source = 'build'): Job {
  return { id: `${source}#${id}`, source, client, server, state, file: `src/f${id}.c`, started: 100, ended: null, metrics: {} }
}

describe('updateGraph', () => {
  it('makes one node per host with size from slots and colour from load', () => {
    const g = updateGraph(null, [host('a', {}, { max_jobs: 1, load: 0 }), host('b', {}, { max_jobs: 16, load: 900 })], [])
    expect(g.nodes.map((n) => n.id)).toEqual(['build/a', 'build/b'])
    expect(g.added).toEqual(['build/a', 'build/b'])
    expect(g.removed).toEqual([])
    const [a, b] = g.nodes
    expect(b.r).toBeGreaterThan(a.r)
    expect(a.fill).toBe(loadColor(0))
    expect(b.fill).toBe(loadColor(900))
    expect(a.fill).not.toBe(b.fill)
    expect(a.slots).toBe(1)
    expect(b.slots).toBe(16)
  })

  it('greys blocked hosts and reads no_remote', () => {
    const g = updateGraph(null, [host('a', { state: 'blocked', labels: { no_remote: 'true' } }, { load: 900 })], [])
    expect(g.nodes[0].blocked).toBe(true)
    expect(g.nodes[0].fill).toBe(BLOCKED_FILL)
    expect(g.nodes[0].noRemote).toBe(true)
  })

  it('links only running remote jobs between known hosts', () => {
    const hosts = [host('a'), host('b'), host('c')]
    const jobs = [
      job(1, 'a', 'b', 'running'),
      job(2, 'a', 'c', 'done'),
      job(3, 'a', 'gone', 'running'),
      job(4, 'b', 'b', 'running'),
      job(5, 'c', 'c', 'local'),
      job(6, 'a', 'b', 'waiting'),
      job(7, 'c', 'a', 'failed'),
      job(8, 'a', 'b', 'running', 'other'),
    ]
    const g = updateGraph(null, hosts, jobs)
    expect(g.links.map((l) => l.id)).toEqual(['build#1'])
    expect(g.links[0].source.id).toBe('build/a')
    expect(g.links[0].target.id).toBe('build/b')
    const local = Object.fromEntries(g.nodes.map((n) => [n.name, n.local]))
    expect(local).toEqual({ a: 0, b: 1, c: 1 })
  })

  it('keeps node objects and positions across updates and drops removed hosts', () => {
    const first = updateGraph(null, [host('a'), host('b')], [], { center: { x: 400, y: 300 } })
    const a = first.nodes[0]
    a.x = 123
    a.y = 456
    a.fx = 123
    a.vx = 2
    const second = updateGraph(first, [host('a', {}, { load: 800, max_jobs: 8 }), host('c')], [job(1, 'a', 'c', 'running')])
    expect(second.nodes[0]).toBe(a)
    expect(a.x).toBe(123)
    expect(a.y).toBe(456)
    expect(a.fx).toBe(123)
    expect(a.vx).toBe(2)
    expect(a.load).toBe(800)
    expect(a.slots).toBe(8)
    expect(second.nodes.map((n) => n.id)).toEqual(['build/a', 'build/c'])
    expect(second.added).toEqual(['build/c'])
    expect(second.removed).toEqual(['build/b'])
    expect(second.links[0].source).toBe(a)
    // the new host starts at a finite position, not at the origin on top of another node
    const c = second.nodes[1]
    expect(Number.isFinite(c.x)).toBe(true)
    expect(Math.hypot((c.x ?? 0) - a.x, (c.y ?? 0) - a.y)).toBeGreaterThan(1)
  })

  it('numbers parallel links so they bow apart', () => {
    const g = updateGraph(null, [host('a'), host('b')], [job(2, 'a', 'b', 'running'), job(1, 'b', 'a', 'running')])
    expect(g.links.map((l) => [l.id, l.lane, l.lanes])).toEqual([
      ['build#2', 1, 2],
      ['build#1', 0, 2],
    ])
    for (const n of g.nodes) n.y = 0
    g.nodes[0].x = 0
    g.nodes[1].x = 200
    const [p2, p1] = g.links.map((l) => linkPath(l))
    expect(p1).toContain('Q')
    expect(p1).not.toBe(p2)
  })
})

describe('radius and colour', () => {
  it('radius is monotonic in slots and bounded', () => {
    let last = -Infinity
    for (const slots of [0, 1, 2, 3, 4, 8, 16, 32, 64, 1000]) {
      const r = radiusFor(slots)
      expect(r).toBeGreaterThanOrEqual(last)
      expect(r).toBeLessThanOrEqual(44)
      last = r
    }
    expect(radiusFor(8)).toBeGreaterThan(radiusFor(2))
    expect(radiusFor(-3)).toBe(radiusFor(0))
    expect(radiusFor(Number.NaN)).toBe(radiusFor(0))
  })

  it('hue goes from green through amber to red as load grows', () => {
    expect(loadHue(0)).toBe(130)
    expect(loadHue(500)).toBe(40)
    expect(loadHue(1000)).toBe(0)
    expect(loadHue(5000)).toBe(0)
    expect(loadHue(-5)).toBe(130)
    let last = Infinity
    for (let l = 0; l <= 1000; l += 50) {
      expect(loadHue(l)).toBeLessThan(last)
      last = loadHue(l)
    }
    expect(loadColor(0)).toMatch(/^hsl\(130 /)
    expect(loadColor(1000)).toMatch(/^hsl\(0 /)
  })
})

describe('clusterAnchors', () => {
  it('puts one source in the centre and spreads several apart', () => {
    expect(clusterAnchors(['a'], 800, 600).get('a')).toEqual({ x: 400, y: 300 })
    const m = clusterAnchors(['a', 'b'], 800, 600)
    const a = m.get('a')!
    const b = m.get('b')!
    expect(Math.hypot(a.x - b.x, a.y - b.y)).toBeGreaterThan(100)
  })
})

describe('bounds', () => {
  it('covers every node with its radius and its label', () => {
    expect(bounds([])).toBeNull()
    const g = updateGraph(null, [host('a-very-long-host-name', {}, { max_jobs: 1 }), host('b', {}, { max_jobs: 16 })], [])
    g.nodes[0].x = 0
    g.nodes[0].y = 0
    g.nodes[1].x = 300
    g.nodes[1].y = 100
    const b = bounds(g.nodes)!
    expect(b.x0).toBeLessThan(-g.nodes[0].r) // the long label is wider than the node
    expect(b.x1).toBeGreaterThanOrEqual(300 + g.nodes[1].r)
    expect(b.y0).toBeLessThanOrEqual(-g.nodes[0].r)
    expect(b.y1).toBeGreaterThan(100 + g.nodes[1].r) // room for the label under the node
  })
})

describe("icemon's star view (issue 12)", () => {
  it('colours by slot use, not by the machine load', async () => {
    const { slotColor, nodeFill } = await import('../src/lib/graph')
    const idleOnBusyMachine = nodeFill({ blocked: false, used: 0, slots: 4, load: 950 }, 'slots')
    expect(idleOnBusyMachine).toBe(slotColor(0, 4))
    expect(idleOnBusyMachine).not.toMatch(/^hsl\(0 /)
    expect(slotColor(4, 4)).toBe('hsl(40 62% 44%)')
    expect(nodeFill({ blocked: false, used: 0, slots: 4, load: 1000 }, 'load')).toBe('hsl(0 68% 46%)')
  })
  it('puts a scheduler at each cluster anchor, named by its source when several', async () => {
    const { schedulers, clusterAnchors } = await import('../src/lib/graph')
    const one = schedulers([{ id: 'ice', name: 'ice', address: '10.0.0.1:8765' }], clusterAnchors(['ice'], 800, 600))
    expect(one).toEqual([{ id: 'scheduler:ice', source: 'ice', label: '10.0.0.1:8765', x: 400, y: 300 }])
    const two = schedulers(
      [
        { id: 'a', name: 'a' },
        { id: 'b', name: 'b' },
      ],
      clusterAnchors(['a', 'b'], 800, 600),
    )
    expect(two.map((s) => s.label)).toEqual(['a', 'b'])
    expect(two[0].y).not.toBe(two[1].y)
  })
  it('spreads hosts with the canvas and labels job edges', async () => {
    const { starRadius, edgeLabel } = await import('../src/lib/graph')
    expect(starRadius(3, 1, 1200, 800)).toBeGreaterThanOrEqual(90)
    expect(starRadius(40, 1, 1200, 800)).toBe(800 * 0.36)
    const job = { id: 'ice#1', file: '/src/dir/unit1.c' } as never
    expect(edgeLabel({ lane: 0, lanes: 1, job })).toBe('unit1.c')
    expect(edgeLabel({ lane: 0, lanes: 3, job })).toBe('3 jobs · unit1.c')
    expect(edgeLabel({ lane: 1, lanes: 3, job })).toBeNull()
  })
})
