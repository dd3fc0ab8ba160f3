import { describe, expect, it } from 'vitest'
import {
  abiRows,
  alertsOf,
  buildResult,
  compareSlaves,
  farmActions,
  farmOf,
  farmSources,
  masterView,
  skewText,
  slaveNumber,
  slaveTone,
  slaveView,
  taskSeconds,
  upSince,
  usage,
} from '../src/lib/farm'
import { actionHelp, actionLabel } from '../src/lib/actions'
import { buildGantt, jobNumber } from '../src/lib/gantt'
import type { ActionSpec, Job, Node, Source } from '../src/lib/types'

// Objects shaped as the piwheels source sends them (the brief's model contract).

function spec(name: string, title: string, targets: string[], confirm = false, roles?: string[]): ActionSpec {
  return { name, title, targets, confirm, params: [], hotkey: null, ...(roles ? { roles } : {}) }
}

const M = ['master']
const S = ['slave']

// As fw-piw's src/fleetwatch/sources/piwheels/farm.py ACTIONS lists them (titles shortened).
const BOTH = ['source', 'node']
const ACTIONS: ActionSpec[] = [
  spec('pause', 'Pause: SLEEP null - every master task pauses', BOTH, false, M),
  spec('halt', 'Halt: SLEEP null, then SKIP null - pause, and abort every running build', BOTH, true, M),
  spec('resume', 'Resume: WAKE null on the master (tasks resume), WAKE id on a slave (undoes a pending stop or kill)', BOTH, false, ['master', 'slave']),
  spec('stop_slaves', 'Stop slaves: KILL null - every slave is told to exit', BOTH, true, M),
  spec('kill_slaves', 'Kill slaves: KILL null, then SKIP null', BOTH, true, M),
  spec('stop_master', 'Stop master: QUIT - the master exits', BOTH, true, M),
  spec('skip', "Skip build: SKIP id - the slave's current build is aborted", ['node'], true, S),
  spec('stop', 'Stop slave: KILL id - the slave exits at its next request for work', ['node'], true, S),
  spec('kill', 'Kill slave: KILL id, then SKIP id', ['node'], true, S),
]

function source(id = 'piw', over: Partial<Source> = {}): Source {
  return {
    id,
    kind: 'piwheels',
    name: id,
    url: 'ipc:///tmp/piw-status',
    status: 'online',
    since: 1000,
    error: null,
    version: '0.23',
    actions: ACTIONS,
    info: { dialect: 'v0.17', master_version: '0.23', status_queue: 'ipc:///tmp/piw-status', control_queue: 'ipc:///tmp/piw-control' },
    last_seen: 1100,
    ...over,
  }
}

function master(src = 'piw', metrics: Record<string, number> = {}, labels: Record<string, string> = {}): Node {
  return {
    id: `${src}:master`,
    source: src,
    name: 'vm',
    address: '',
    state: 'online',
    since: 1000,
    labels: { role: 'master', paused: 'false', label: 'vm', os_name: 'Debian GNU/Linux', os_version: '12 (bookworm)', ...labels },
    metrics: {
      packages_built: 3,
      files_count: 4,
      builds_size: 123456,
      builds_time: 600,
      disk_size: 100e9,
      disk_free: 60e9,
      mem_size: 8e9,
      mem_free: 4e9,
      swap_size: 0,
      swap_free: 0,
      load_average: 0.5,
      cpu_temp: 0,
      'queue.cp311': 3,
      'builds.cp311': 2,
      'queue.cp39': 0,
      'builds.cp39': 1,
      ...metrics,
    },
  }
}

function slave(n: number, label: string, abi: string, over: Partial<Node> = {}, metrics: Record<string, number> = {}): Node {
  return {
    id: `piw:slave:${n}`,
    source: 'piw',
    name: label,
    address: '',
    state: 'idle',
    since: 1010,
    labels: {
      role: 'slave',
      label,
      abi,
      platform: 'linux_x86_64',
      os_name: 'Debian GNU/Linux',
      os_version: '12',
      board_revision: 'unknown',
      board_serial: 'unknown',
      task: '',
      status: 'Waiting for jobs',
    },
    metrics: { clock_skew: 0.25, disk_size: 10e9, disk_free: 5e9, mem_size: 2e9, mem_free: 1e9, swap_size: 0, swap_free: 0, load_average: 0.1, cpu_temp: 0, ...metrics },
    ...over,
  }
}

function build(n: number, slaveId: string, state: Job['state'], started: number, ended: number | null): Job {
  return { id: `piw:build:${n}`, source: 'piw', client: slaveId, server: 'piw:master', state, file: `pkg${n} 0.1 (cp311)`, started, ended, metrics: {} }
}

describe('usage', () => {
  it('gives used and the share used', () => {
    expect(usage({ disk_size: 100, disk_free: 25 }, 'disk')).toEqual({ size: 100, free: 25, used: 75, ratio: 0.75 })
  })
  it('has no share while the size is 0 (the first STATS)', () => {
    expect(usage({ disk_size: 0, disk_free: 0 }, 'disk')?.ratio).toBeNull()
  })
  it('is null when the metrics are absent', () => {
    expect(usage({ disk_size: 100 }, 'disk')).toBeNull()
  })
})

describe('abiRows', () => {
  it('pairs queue.ABI and builds.ABI, sorted by ABI, ignoring other dotted keys', () => {
    expect(abiRows({ 'queue.cp311': 3, 'builds.cp311': 2, 'builds.cp39': 1, 'other.cp39': 9, load_average: 1 })).toEqual([
      { abi: 'cp311', queue: 3, builds: 2 },
      { abi: 'cp39', queue: 0, builds: 1 },
    ])
  })
})

describe('masterView', () => {
  it('reads the paused label, totals per ABI, machine and label', () => {
    const m = masterView(master('piw', {}, { paused: 'true' }))
    expect(m.paused).toBe(true)
    expect(m.label).toBe('vm')
    expect(m.queued).toBe(3)
    expect(m.builtLastHour).toBe(3)
    expect(m.disk?.ratio).toBeCloseTo(0.4)
    expect(m.swap?.ratio).toBeNull()
    expect(m.load).toBe(0.5)
    expect(m.temp).toBeNull() // 0.0 on the wire = no thermal zone
    expect(m.alerts).toEqual([])
    expect(masterView(master()).paused).toBe(false)
  })
  it('flags what piw-monitor flags: little disk or memory, swap half used, load, heat', () => {
    const m = masterView(master('piw', { disk_free: 5e9, mem_free: 0.5e9, swap_size: 100, swap_free: 40, load_average: 4.5, cpu_temp: 71 }))
    expect(m.alerts).toHaveLength(5)
    expect(alertsOf({ cpu_temp: 75 }, 78)).toEqual([])
    expect(alertsOf({ cpu_temp: 79 }, 78)).toEqual(['79.0 °C'])
  })
})

describe('slaveView', () => {
  it('reads the labels and metrics of a slave', () => {
    const s = slaveView(slave(2, 'lab-slave-1', 'cp311', {}, { task_started: 1500 }))
    expect(s.num).toBe(2)
    expect(s.label).toBe('lab-slave-1')
    expect(s.abi).toBe('cp311')
    expect(s.os).toBe('Debian GNU/Linux 12')
    expect(s.clockSkew).toBe(0.25)
    expect(s.taskStarted).toBe(1500)
    expect(s.status).toBe('Waiting for jobs')
  })
  it('has no task time when idle, and a growing one while it builds', () => {
    expect(taskSeconds(slaveView(slave(1, 'a', 'cp311')), 2000)).toBeNull()
    const busy = slaveView(slave(1, 'a', 'cp311', {}, { task_started: 1990 }))
    expect(taskSeconds(busy, 2000)).toBe(10)
    expect(taskSeconds(busy, 2004)).toBe(14)
    expect(taskSeconds(busy, 1980)).toBe(0) // a slave clock ahead of ours never goes negative
  })
  it('takes its up time from started / first_seen, else since', () => {
    expect(upSince(slave(1, 'a', 'cp311', {}, { first_seen: 900 }))).toBe(900)
    const labelled = slave(1, 'a', 'cp311')
    labelled.labels.started = '1970-01-01T00:15:00Z'
    expect(upSince(labelled)).toBe(900)
    expect(upSince(slave(1, 'a', 'cp311'))).toBe(1010)
  })
  it('is toned busy, idle, alert or bad', () => {
    expect(slaveTone(slaveView(slave(1, 'a', 'cp311')))).toBe('idle')
    const b = slave(1, 'a', 'cp311')
    b.labels.task = 'Building foo 1.0'
    expect(slaveTone(slaveView(b))).toBe('busy')
    expect(slaveTone(slaveView(slave(1, 'a', 'cp311', {}, { disk_free: 1e8 })))).toBe('warn')
    expect(slaveTone(slaveView(slave(1, 'a', 'cp311', { state: 'offline' })))).toBe('bad')
  })
})

describe('farmOf', () => {
  it("splits one source's master, slaves and builds, slaves by ABI then label", () => {
    const nodes = [
      slave(1, 'lab-slave-2', 'cp311'),
      master(),
      slave(2, 'lab-slave-1', 'cp311'),
      slave(3, 'old', 'cp39'),
      { ...master('other'), id: 'other:master' },
    ]
    const jobs = [build(1, 'piw:slave:2', 'done', 1040, 1057), { ...build(2, 'x', 'done', 1, 2), source: 'other' }]
    const f = farmOf(source(), nodes, jobs)
    expect(f.master?.node.id).toBe('piw:master')
    expect(f.slaves.map((s) => s.label)).toEqual(['lab-slave-1', 'lab-slave-2', 'old'])
    expect(f.builds.map((j) => j.id)).toEqual(['piw:build:1'])
    expect(f.busy).toBe(0)
  })
  it('has no master before the master said hello', () => {
    expect(farmOf(source(), [], []).master).toBeNull()
  })
  it('orders equal labels by number', () => {
    const a = slaveView(slave(10, 'x', 'cp311'))
    const b = slaveView(slave(9, 'x', 'cp311'))
    expect([a, b].sort(compareSlaves).map((s) => s.num)).toEqual([9, 10])
  })
})

describe('farmActions', () => {
  it("gives the source's actions to the master, and the slave's own (and resume) to the slaves", () => {
    const a = farmActions(source())
    expect(a.master.map((s) => s.name)).toEqual(['pause', 'halt', 'resume', 'stop_slaves', 'kill_slaves', 'stop_master'])
    expect(a.slave.map((s) => s.name)).toEqual(['resume', 'skip', 'stop', 'kill'])
  })
  it('never offers a master-wide action (a pause) on a slave', () => {
    expect(farmActions(source()).slave.some((s) => s.name === 'pause' || s.name.endsWith('_slaves'))).toBe(false)
  })
  it('splits by roles, never by titles', () => {
    const both = ['master', 'slave']
    const odd = [
      spec('wake', 'Wake everything', BOTH, false, both),
      spec('nap', 'Nap: on a slave too, says the title', BOTH, false, M),
      spec('poke', 'Poke', ['node'], false, S),
    ]
    const a = farmActions(source('piw', { actions: odd }))
    expect(a.master.map((s) => s.name)).toEqual(['wake', 'nap'])
    expect(a.slave.map((s) => s.name)).toEqual(['wake', 'poke'])
  })
  it('splits node-only and source-only specs without roles by their targets alone', () => {
    const only = [spec('pause', 'Pause', ['source']), spec('skip', 'Skip', ['node'])]
    expect(farmActions(source('piw', { actions: only }))).toEqual({ master: [only[0]], slave: [only[1]] })
    expect(farmActions(undefined)).toEqual({ master: [], slave: [] })
  })
})

describe('alerts and results from the source', () => {
  it("takes the source's own alert reasons when it gives them", () => {
    expect(masterView(master('piw', {}, { alert: 'silent,disk' })).alerts).toEqual(['silent', 'disk'])
    expect(masterView(master('piw', {}, { alert: '' })).alerts).toEqual([])
  })
  it("says how a build ended from its reason", () => {
    const j = build(1, 'piw:slave:1', 'failed', 1, 2)
    expect(buildResult({ ...j, metrics: { reason: 2 } })).toBe('skipped')
    expect(buildResult({ ...j, metrics: { reason: 0 }, state: 'done' })).toBe('built')
    expect(buildResult({ ...j, metrics: {} })).toBe('failed')
    expect(buildResult({ ...j, state: 'running', ended: null })).toBe('building')
  })
})

describe('action labels', () => {
  it('cuts a "Title: help" title into the label and its help', () => {
    const a = ACTIONS[0]
    expect(actionLabel(a)).toBe('Pause')
    expect(actionHelp(a)).toBe('SLEEP null - every master task pauses')
    expect(actionLabel(spec('x', 'Reread + update', ['source']))).toBe('Reread + update')
    expect(actionHelp(spec('x', 'Reread + update', ['source']))).toBe('')
  })
})

describe('small helpers', () => {
  it('finds the piwheels sources', () => {
    expect(farmSources([source('b'), source('sv', { kind: 'supervisor' }), source('a')]).map((s) => s.id)).toEqual(['a', 'b'])
  })
  it('numbers slaves and builds', () => {
    expect(slaveNumber('piw:slave:12')).toBe(12)
    expect(slaveNumber('piw:slave:x')).toBeNull()
    expect(jobNumber('piw:build:7')).toBe(7)
    expect(jobNumber('ice#8')).toBe(8)
    expect(jobNumber('nonumber')).toBeNaN()
  })
  it('writes clock skews', () => {
    expect(skewText(null)).toBe('–')
    expect(skewText(0)).toBe('0.0 s')
    expect(skewText(0.25)).toBe('+0.3 s')
    expect(skewText(-12)).toBe('−12 s')
    expect(skewText(125)).toBe('+2 min 5 s')
  })
})

describe('the timeline of a farm', () => {
  it("draws each build on its slave's row (the job's client)", () => {
    const hosts = [
      { id: 'piw:slave:1', source: 'piw', name: 'lab-slave-2', slots: 1 },
      { id: 'piw:slave:2', source: 'piw', name: 'lab-slave-1', slots: 1 },
    ]
    const jobs = [build(1, 'piw:slave:2', 'done', 1040, 1057), build(2, 'piw:slave:1', 'running', 1044, null), build(3, 'piw:slave:9', 'failed', 1045, 1050)]
    const rows = buildGantt(hosts, jobs, { from: 1000, to: 1100 }, 1100, (j) => j.client)
    expect(rows.map((r) => [r.host.id, r.bars.map((b) => b.id)])).toEqual([
      ['piw:slave:1', ['piw:build:2']],
      ['piw:slave:2', ['piw:build:1']],
      ['piw:slave:9', ['piw:build:3']],
    ])
    expect(rows[0].bars[0].end).toBe(1100) // running: to now
    expect(rows[2].gone).toBe(true)
    expect(rows[2].host.source).toBe('piw')
    expect(rows[2].host.name).toBe('piw:slave:9')
  })
})
