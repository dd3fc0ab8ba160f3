import { describe, expect, it } from 'vitest'
import {
  buildItems,
  compareText,
  countStates,
  coverage,
  downSeconds,
  addedDescription,
  meaningfulStop,
  moveCursor,
  nextSort,
  parseGroupBy,
  parseSort,
  formatSort,
  prune,
  selectRange,
  sortProcesses,
  stateFilter,
  toggle,
  toggleAll,
  uptimeSeconds,
  withState,
  withoutState,
  type HeaderItem,
  type RowItem,
} from '../src/lib/processes'
import type { Process, Source } from '../src/lib/types'

function proc(source: string, group: string, name: string, state: string, extra: Partial<Process> = {}): Process {
  return {
    id: `${source}:${group}:${name}`,
    source,
    group,
    name,
    state,
    pid: state === 'RUNNING' ? 1000 + name.length : null,
    started: null,
    stopped: null,
    exitstatus: 0,
    description: '',
    spawnerr: '',
    stdout_logfile: '',
    stderr_logfile: '',
    ...extra,
  }
}

function source(id: string, info: Record<string, unknown> = {}): Source {
  return {
    id,
    kind: 'supervisor',
    name: id,
    url: '',
    status: 'online',
    since: 0,
    error: null,
    version: null,
    actions: [],
    info,
    last_seen: null,
  }
}

const list: Process[] = [
  proc('sv2', 'web', 'web', 'RUNNING', { pid: 30, started: 1000 }),
  proc('sv1', 'workers', 'worker_10', 'FATAL', { spawnerr: "can't find command" }),
  proc('sv1', 'workers', 'worker_2', 'RUNNING', { pid: 7, started: 2000 }),
  proc('sv1', 'web', 'web', 'STOPPED'),
  proc('sv10', 'idle', 'idle', 'BACKOFF'),
]

const ids = (ps: Process[]) => ps.map((p) => p.id)

describe('sorting', () => {
  it('sorts names naturally and breaks ties by id', () => {
    expect(ids(sortProcesses(list, { key: 'name', dir: 1 }))).toEqual([
      'sv10:idle:idle',
      'sv1:web:web',
      'sv2:web:web',
      'sv1:workers:worker_2',
      'sv1:workers:worker_10',
    ])
  })

  it('reverses with dir -1', () => {
    const asc = ids(sortProcesses(list, { key: 'source', dir: 1 }))
    const desc = ids(sortProcesses(list, { key: 'source', dir: -1 }))
    expect(asc.map((id) => id.split(':')[0])).toEqual(['sv1', 'sv1', 'sv1', 'sv2', 'sv10'])
    expect(desc[0]).toBe('sv10:idle:idle')
  })

  it('sorts states worst first', () => {
    expect(sortProcesses(list, { key: 'state', dir: 1 }).map((p) => p.state)).toEqual([
      'FATAL',
      'BACKOFF',
      'STOPPED',
      'RUNNING',
      'RUNNING',
    ])
  })

  it('puts missing pids and not-running uptimes last in both directions', () => {
    expect(sortProcesses(list, { key: 'pid', dir: 1 }).map((p) => p.pid)).toEqual([7, 30, null, null, null])
    expect(sortProcesses(list, { key: 'pid', dir: -1 }).map((p) => p.pid)).toEqual([30, 7, null, null, null])
    // ascending uptime: the most recently started first
    expect(ids(sortProcesses(list, { key: 'uptime', dir: 1 })).slice(0, 2)).toEqual(['sv1:workers:worker_2', 'sv2:web:web'])
    expect(ids(sortProcesses(list, { key: 'uptime', dir: -1 })).slice(0, 2)).toEqual(['sv2:web:web', 'sv1:workers:worker_2'])
  })

  it('does not modify its input, and flips on a second click', () => {
    const before = ids(list)
    sortProcesses(list, { key: 'name', dir: -1 })
    expect(ids(list)).toEqual(before)
    expect(nextSort({ key: 'name', dir: 1 }, 'name')).toEqual({ key: 'name', dir: -1 })
    expect(nextSort({ key: 'name', dir: -1 }, 'pid')).toEqual({ key: 'pid', dir: 1 })
  })

  it('round-trips through storage and rejects junk', () => {
    expect(parseSort(formatSort({ key: 'uptime', dir: -1 }))).toEqual({ key: 'uptime', dir: -1 })
    expect(parseSort('bogus:desc')).toEqual({ key: 'name', dir: 1 })
    expect(parseSort(null)).toEqual({ key: 'name', dir: 1 })
    expect(parseGroupBy('group')).toBe('group')
    expect(parseGroupBy('nonsense')).toBe('source')
  })
})

describe('grouping', () => {
  const sorted = sortProcesses(list, { key: 'name', dir: 1 })

  it('lists rows only without grouping', () => {
    const items = buildItems(sorted, 'none')
    expect(items.every((i) => i.type === 'row')).toBe(true)
    expect(items).toHaveLength(5)
  })

  it('puts a header with counts by state before each source', () => {
    const items = buildItems(sorted, 'source')
    const headers = items.filter((i): i is HeaderItem => i.type === 'header')
    expect(headers.map((h) => h.value)).toEqual(['sv1', 'sv2', 'sv10'])
    expect(items.map((i) => (i.type === 'header' ? `#${i.value}` : i.process.name))).toEqual([
      '#sv1',
      'web',
      'worker_2',
      'worker_10',
      '#sv2',
      'web',
      '#sv10',
      'idle',
    ])
    expect(headers[0].counts).toEqual([
      ['FATAL', 1],
      ['STOPPED', 1],
      ['RUNNING', 1],
    ])
    expect(headers[0].ids).toEqual(['sv1:web:web', 'sv1:workers:worker_2', 'sv1:workers:worker_10'])
    const row = items[1] as RowItem
    expect(row.header).toBe('source:sv1')
  })

  it('groups by group name across sources, and collapses', () => {
    const items = buildItems(sorted, 'group', new Set(['group:workers']))
    const headers = items.filter((i): i is HeaderItem => i.type === 'header')
    expect(headers.map((h) => `${h.value}:${h.ids.length}:${h.collapsed}`)).toEqual([
      'idle:1:false',
      'web:2:false',
      'workers:2:true',
    ])
    // no rows under the collapsed header
    expect(items[items.length - 1]).toMatchObject({ type: 'header', value: 'workers' })
    expect(items.filter((i) => i.type === 'row')).toHaveLength(3)
  })

  it('shows headers for sources without rows when asked', () => {
    const items = buildItems([], 'source', new Set(), ['sv9'])
    expect(items).toEqual([
      { type: 'header', key: 'source:sv9', by: 'source', value: 'sv9', ids: [], counts: [], collapsed: false },
    ])
  })

  it('counts unknown states after the known ones', () => {
    expect(countStates([{ state: 'WEIRD' }, { state: 'RUNNING' }, { state: 'FATAL' }, { state: 'RUNNING' }])).toEqual([
      ['FATAL', 1],
      ['RUNNING', 2],
      ['WEIRD', 1],
    ])
  })
})

describe('selection', () => {
  const order = ['a', 'b', 'c', 'd', 'e']

  it('toggles one id without touching the input set', () => {
    const s0 = new Set(['a'])
    const s1 = toggle(s0, 'b')
    expect([...s1].sort()).toEqual(['a', 'b'])
    expect([...s0]).toEqual(['a'])
    expect([...toggle(s1, 'a')]).toEqual(['b'])
    expect([...toggle(s1, 'a', true)].sort()).toEqual(['a', 'b'])
  })

  it('selects a shift range in either direction', () => {
    expect([...selectRange(new Set(), order, 'b', 'd', true)].sort()).toEqual(['b', 'c', 'd'])
    expect([...selectRange(new Set(), order, 'e', 'c', true)].sort()).toEqual(['c', 'd', 'e'])
    // a range can also clear
    expect([...selectRange(new Set(order), order, 'a', 'c', false)].sort()).toEqual(['d', 'e'])
    // no anchor (or a vanished one): just the clicked row
    expect([...selectRange(new Set(), order, null, 'c', true)]).toEqual(['c'])
    expect([...selectRange(new Set(), order, 'zz', 'c', true)]).toEqual(['c'])
  })

  it('select-all selects exactly the filtered rows and keeps others', () => {
    const filtered = ['b', 'd']
    const s = toggleAll(new Set(['x']), filtered)
    expect([...s].sort()).toEqual(['b', 'd', 'x'])
    expect(coverage(s, filtered)).toBe('all')
    expect(coverage(s, order)).toBe('some')
    // a second click clears the filtered rows only
    expect([...toggleAll(s, filtered)]).toEqual(['x'])
    // partly selected: select-all selects the rest
    expect([...toggleAll(new Set(['b']), filtered)].sort()).toEqual(['b', 'd'])
    expect(coverage(new Set(), filtered)).toBe('none')
    expect(coverage(new Set(['a']), [])).toBe('none')
  })

  it('survives repaints: prune keeps the same set when nothing vanished', () => {
    const s = new Set(['a', 'b'])
    expect(prune(s, () => true)).toBe(s)
    expect([...prune(s, (id) => id !== 'a')]).toEqual(['b'])
  })

  it('moves a cursor within bounds', () => {
    expect(moveCursor(order, null, 1)).toBe('a')
    expect(moveCursor(order, null, -1)).toBe('e')
    expect(moveCursor(order, 'b', 1)).toBe('c')
    expect(moveCursor(order, 'a', -1)).toBe('a')
    expect(moveCursor(order, 'e', 1)).toBe('e')
    expect(moveCursor([], 'a', 1)).toBeNull()
  })
})

describe('uptime', () => {
  const now = 10_000 * 1000

  it('counts from started on the hub clock', () => {
    const p = proc('sv1', 'g', 'n', 'RUNNING', { started: 9_000 })
    expect(uptimeSeconds(p, source('sv1'), now)).toBe(1000)
    // the daemon's clock is 30 s behind the hub's: it started 30 s later by the hub clock
    expect(uptimeSeconds(p, source('sv1', { clock_offset: 30 }), now)).toBe(970)
    expect(uptimeSeconds(p, source('sv1', { clock_offset: -5.5 }), now)).toBe(1005.5)
    // junk offsets are ignored
    expect(uptimeSeconds(p, source('sv1', { clock_offset: 'x' }), now)).toBe(1000)
    expect(uptimeSeconds(p, undefined, now)).toBe(1000)
  })

  it('is null when not up, never negative', () => {
    expect(uptimeSeconds(proc('s', 'g', 'n', 'STOPPED', { started: 9_000 }), undefined, now)).toBeNull()
    expect(uptimeSeconds(proc('s', 'g', 'n', 'RUNNING'), undefined, now)).toBeNull()
    expect(uptimeSeconds(proc('s', 'g', 'n', 'RUNNING', { started: 10_005 }), undefined, now)).toBe(0)
  })

  it('counts downtime of stopped processes', () => {
    const p = proc('s', 'g', 'n', 'EXITED', { stopped: 9_900 })
    expect(downSeconds(p, source('s', { clock_offset: 50 }), now)).toBe(50)
    expect(downSeconds(proc('s', 'g', 'n', 'RUNNING', { stopped: 9_900 }), undefined, now)).toBeNull()
  })
})

describe('state chips', () => {
  it('reads the state: word', () => {
    expect(stateFilter('group:web state:RUNNING,fatal')).toEqual(['running', 'fatal'])
    expect(stateFilter('group:web')).toEqual([])
    expect(stateFilter('-state:running')).toEqual([])
  })

  it('adds or replaces the state: word and keeps the rest', () => {
    expect(withState('', 'FATAL')).toBe('state:fatal')
    expect(withState('group:web state:running', 'BACKOFF')).toBe('group:web state:backoff')
    expect(withState('State:running name:"mail relay"', null)).toBe('name:"mail relay"')
    expect(withState('-state:running', 'FATAL')).toBe('-state:running state:fatal')
    expect(withoutState('api state:fatal')).toBe('api')
  })
})

describe('addedDescription (issue 12: the column adds to PID and uptime)', () => {
  it("drops supervisord's running description, which the PID and uptime columns already say", () => {
    expect(addedDescription(proc('s', 'g', 'n', 'RUNNING', { description: 'pid 42, uptime 0:00:08' }))).toBe('')
    expect(addedDescription(proc('s', 'g', 'n', 'RUNNING', { description: 'pid 42, uptime 3 days, 1:02:03' }))).toBe('')
  })
  it('keeps what adds something, and prefers the spawn error', () => {
    expect(addedDescription(proc('s', 'g', 'n', 'STOPPED', { description: 'Not started' }))).toBe('Not started')
    expect(addedDescription(proc('s', 'g', 'n', 'BACKOFF', { description: 'Exited too quickly (process log may have details)' }))).toBe(
      'Exited too quickly (process log may have details)',
    )
    expect(addedDescription(proc('s', 'g', 'n', 'FATAL', { spawnerr: 'no such file' }))).toBe('no such file')
  })
})

describe('meaningfulStop', () => {
  it('hides a stop time that is not before the current start of a running process', () => {
    expect(meaningfulStop({ state: 'RUNNING', started: 100, stopped: 100 })).toBeNull()
    expect(meaningfulStop({ state: 'RUNNING', started: 100, stopped: 0 })).toBeNull()
    expect(meaningfulStop({ state: 'RUNNING', started: 100, stopped: 50 })).toBe(50)
  })
  it('shows when a stopped process stopped', () => {
    expect(meaningfulStop({ state: 'STOPPED', started: 100, stopped: 100 })).toBe(100)
    expect(meaningfulStop({ state: 'EXITED', started: 100, stopped: 160 })).toBe(160)
    expect(meaningfulStop({ state: 'STOPPED', started: 0, stopped: 0 })).toBeNull()
  })
})

describe('compareText', () => {
  const sortWith = (xs: string[]) => xs.slice().sort(compareText)
  it('orders naturally and ignores ASCII case', () => {
    expect(sortWith(['w10', 'w2', 'W1', 'w02x', 'a'])).toEqual(['a', 'W1', 'w2', 'w02x', 'w10'])
    expect(sortWith(['Web', 'api', 'web', 'Api'])).toEqual(['Api', 'api', 'Web', 'web'])
    expect(compareText('x', 'x')).toBe(0)
    expect(Math.sign(compareText('a', 'ab'))).toBe(-1)
    expect(Math.sign(compareText('w007', 'w7'))).not.toBe(0)
  })
  it('leaves non-ASCII differences to the collator', () => {
    expect(sortWith(['zebra', 'äpfel', 'apfel', 'öl'])).toEqual(['apfel', 'äpfel', 'öl', 'zebra'])
  })
})
