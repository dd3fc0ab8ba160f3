import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { actionsFor, commonActions, perform, runOnAll, summarize, type BulkResult } from '../src/lib/actions'
import { answer, pending } from '../src/lib/confirm'
import { toaster } from '../src/lib/toasts'
import type { ActionSpec, Source, Target } from '../src/lib/types'

function spec(name: string, targets: string[], extra: Partial<ActionSpec> = {}): ActionSpec {
  return { name, title: name[0].toUpperCase() + name.slice(1), targets, confirm: false, params: [], hotkey: null, ...extra }
}

function source(id: string, actions: ActionSpec[], kind = 'supervisor'): Source {
  return { id, kind, name: id, url: '', status: 'online', since: 0, error: null, version: null, actions, info: {}, last_seen: null }
}

const start = spec('start', ['process', 'group', 'source'])
const stop = spec('stop', ['process', 'group', 'source'], { confirm: true })
const update = spec('update', ['source'], { confirm: true })
const signal = spec('signal', ['process'], {
  confirm: true,
  params: [{ name: 'signal', type: 'string', required: true, choices: ['HUP', 'TERM'], default: null, title: 'Signal' }],
})
const block = spec('block', ['node'], { confirm: true })

const sv1 = source('sv1', [start, stop, update, signal])
const sv2 = source('sv2', [start, stop])
const build = source('build', [block], 'icecream')

describe('actionsFor / commonActions', () => {
  it('lists the actions a source offers on a kind, in its order', () => {
    expect(actionsFor(sv1, 'process').map((a) => a.name)).toEqual(['start', 'stop', 'signal'])
    expect(actionsFor(sv1, 'source').map((a) => a.name)).toEqual(['start', 'stop', 'update'])
    expect(actionsFor(sv1, 'group').map((a) => a.name)).toEqual(['start', 'stop'])
    expect(actionsFor(build, 'node').map((a) => a.name)).toEqual(['block'])
    expect(actionsFor(build, 'process')).toEqual([])
    expect(actionsFor(undefined, 'process')).toEqual([])
  })
  it('offers a node only the actions for its role', () => {
    const spec = (name: string, roles?: string[]) =>
      ({ name, title: name, targets: ['node', 'source'], confirm: false, params: [], hotkey: null, ...(roles ? { roles } : {}) })
    const piw = { ...build, actions: [spec('pause', ['master']), spec('kill', ['slave']), spec('resume', ['master', 'slave']), spec('any')] }
    expect(actionsFor(piw, 'node', 'slave').map((a) => a.name)).toEqual(['kill', 'resume', 'any'])
    expect(actionsFor(piw, 'node', 'master').map((a) => a.name)).toEqual(['pause', 'resume', 'any'])
    expect(actionsFor(piw, 'node').map((a) => a.name)).toEqual(['pause', 'kill', 'resume', 'any'])
    expect(actionsFor(piw, 'source', 'slave').map((a) => a.name)).toEqual(['pause', 'kill', 'resume', 'any'])
  })

  it('keeps only the actions every source offers', () => {
    expect(commonActions([sv1, sv2], 'process').map((a) => a.name)).toEqual(['start', 'stop'])
    expect(commonActions([sv2, sv1], 'source').map((a) => a.name)).toEqual(['start', 'stop'])
    expect(commonActions([sv1], 'process').map((a) => a.name)).toEqual(['start', 'stop', 'signal'])
    expect(commonActions([sv1, build], 'process')).toEqual([])
    expect(commonActions([sv1, undefined], 'process')).toEqual([])
    expect(commonActions([], 'process')).toEqual([])
  })
})

describe('summarize', () => {
  const t = (id: string): Target => ({ kind: 'process', id })
  const ok = (id: string): BulkResult => ({ target: t(id), result: { ok: true, error: null, detail: null } })
  const bad = (id: string, error: string | null): BulkResult => ({ target: t(id), result: { ok: false, error, detail: null } })

  it('says how many succeeded', () => {
    expect(summarize('Stop', [ok('a'), ok('b'), ok('c')])).toEqual({ ok: true, text: 'Stop: 3 ok' })
    expect(summarize('Stop', [])).toEqual({ ok: true, text: 'Stop: 0 ok' })
  })

  it('names the first failure and hints at more', () => {
    expect(summarize('Stop', [ok('a'), bad('sv2:web:api', 'not running')])).toEqual({
      ok: false,
      text: 'Stop: 1 ok, 1 failed (sv2:web:api: not running)',
    })
    expect(summarize('Stop', [bad('x', null), bad('y', 'boom'), ok('z')])).toEqual({
      ok: false,
      text: 'Stop: 1 ok, 2 failed (x, …)',
    })
  })
})

/** A stub of the hub's POST /api/actions, recording bodies and concurrency. */
function stubHub(reply: (body: { target: Target; name: string; params: Record<string, unknown> }) => { status: number; json: unknown }, gate = false) {
  const calls: { url: string; body: { target: Target; name: string; params: Record<string, unknown> }; init: RequestInit }[] = []
  const waiting: (() => void)[] = []
  let inFlight = 0
  let maxInFlight = 0
  const fetchStub = vi.fn(async (url: string, init: RequestInit) => {
    const body = JSON.parse(String(init.body)) as (typeof calls)[number]['body']
    calls.push({ url: String(url), body, init })
    inFlight += 1
    maxInFlight = Math.max(maxInFlight, inFlight)
    if (gate) await new Promise<void>((resolve) => waiting.push(resolve))
    else await Promise.resolve()
    inFlight -= 1
    const { status, json } = reply(body)
    return new Response(JSON.stringify(json), { status, headers: { 'Content-Type': 'application/json' } })
  })
  vi.stubGlobal('fetch', fetchStub)
  return {
    calls,
    waiting,
    get maxInFlight() {
      return maxInFlight
    },
    get inFlight() {
      return inFlight
    },
  }
}

const flush = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve()
}

beforeEach(() => {
  vi.stubGlobal('window', { location: { origin: 'http://hub.example', pathname: '/fleet/' } })
  toaster.clear()
})
afterEach(() => {
  vi.unstubAllGlobals()
  answer(null)
})

describe('runOnAll', () => {
  it('posts one action per target, in order, with the params, and returns results in target order', async () => {
    const hub = stubHub((b) => (b.target.id.endsWith('2') ? { status: 409, json: { error: 'no such action' } } : { status: 200, json: { ok: true, error: null, detail: 7 } }))
    const targets: Target[] = [1, 2, 3].map((i) => ({ kind: 'process', id: `sv1:web:p${i}` }))
    const results = await runOnAll(targets, 'signal', { signal: 'HUP' })
    expect(hub.calls.map((c) => c.url)).toEqual(Array(3).fill('http://hub.example/fleet/api/actions'))
    expect(hub.calls.map((c) => c.body)).toEqual(targets.map((target) => ({ target, name: 'signal', params: { signal: 'HUP' } })))
    expect(hub.calls[0].init.method).toBe('POST')
    expect(results.map((r) => r.target.id)).toEqual(targets.map((t) => t.id))
    expect(results.map((r) => r.result)).toEqual([
      { ok: true, error: null, detail: 7 },
      { ok: false, error: 'no such action', detail: null },
      { ok: true, error: null, detail: 7 },
    ])
  })

  it('keeps at most `parallel` requests in flight', async () => {
    const hub = stubHub(() => ({ status: 200, json: { ok: true, error: null, detail: null } }), true)
    const targets: Target[] = Array.from({ length: 20 }, (_, i) => ({ kind: 'process', id: `p${i}` }))
    const done = runOnAll(targets, 'stop', {}, 3)
    await flush()
    expect(hub.inFlight).toBe(3)
    expect(hub.calls).toHaveLength(3)
    // release them one by one: a new one starts as each ends, never more than 3
    while (hub.waiting.length) {
      hub.waiting.shift()?.()
      await flush()
      expect(hub.inFlight).toBeLessThanOrEqual(3)
    }
    const results = await done
    expect(hub.maxInFlight).toBe(3)
    expect(hub.calls).toHaveLength(20)
    expect(new Set(hub.calls.map((c) => c.body.target.id)).size).toBe(20)
    expect(results.every((r) => r.result.ok)).toBe(true)
  })

  it('defaults to 8 in flight; handles an empty list', async () => {
    const hub = stubHub(() => ({ status: 200, json: { ok: true, error: null, detail: null } }), true)
    const done = runOnAll(Array.from({ length: 12 }, (_, i) => ({ kind: 'process', id: `p${i}` })), 'start')
    await flush()
    expect(hub.inFlight).toBe(8)
    while (hub.waiting.length) {
      hub.waiting.shift()?.()
      await flush()
    }
    expect((await done).length).toBe(12)
    expect(await runOnAll([], 'start')).toEqual([])
  })

  it('reports an unreachable hub as a failed result', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => Promise.reject(new TypeError('Failed to fetch'))))
    const [r] = await runOnAll([{ kind: 'source', id: 'sv1' }], 'update')
    expect(r.result.ok).toBe(false)
    expect(r.result.error).toContain('hub unreachable')
  })
})

describe('perform', () => {
  it('runs a harmless action on one target at once and toasts the outcome', async () => {
    const hub = stubHub(() => ({ status: 200, json: { ok: true, error: null, detail: null } }))
    const results = await perform(start, [{ kind: 'process', id: 'sv1:web:a' }])
    expect(pending.value).toBeNull()
    expect(results).toHaveLength(1)
    expect(hub.calls[0].body).toEqual({ target: { kind: 'process', id: 'sv1:web:a' }, name: 'start', params: {} })
    expect(toaster.toasts.value.map((t) => [t.title, t.severity])).toEqual([['Start: 1 ok', 'success']])
  })

  it('asks first for a confirm action, and does nothing when told no', async () => {
    const hub = stubHub(() => ({ status: 200, json: { ok: true, error: null, detail: null } }))
    const p = perform(stop, [{ kind: 'source', id: 'sv1' }])
    await flush()
    expect(pending.value).toMatchObject({ title: 'Stop?', danger: true })
    answer(null)
    expect(await p).toBeNull()
    expect(hub.calls).toHaveLength(0)
    expect(toaster.toasts.value).toEqual([])
  })

  it('passes the answered params to every target and lists them in the question', async () => {
    const hub = stubHub((b) => (b.target.id === 'b' ? { status: 200, json: { ok: false, error: 'not running', detail: null } } : { status: 200, json: { ok: true, error: null, detail: null } }))
    const p = perform(signal, [
      { kind: 'process', id: 'a' },
      { kind: 'process', id: 'b' },
    ])
    await flush()
    expect(pending.value?.items).toEqual(['a', 'b'])
    expect(pending.value?.text).toBe('Signal 2 processes')
    expect(pending.value?.params?.map((x) => x.name)).toEqual(['signal'])
    answer({ params: { signal: 'TERM' } })
    const results = await p
    expect(results?.map((r) => r.result.ok)).toEqual([true, false])
    expect(hub.calls.map((c) => c.body.params)).toEqual([{ signal: 'TERM' }, { signal: 'TERM' }])
    expect(toaster.toasts.value.map((t) => [t.title, t.severity])).toEqual([['Signal: 1 ok, 1 failed (b: not running)', 'error']])
  })

  it('asks before a harmless action on several targets', async () => {
    stubHub(() => ({ status: 200, json: { ok: true, error: null, detail: null } }))
    const p = perform(start, [
      { kind: 'process', id: 'a' },
      { kind: 'process', id: 'b' },
    ])
    await flush()
    expect(pending.value).toMatchObject({ danger: false, items: ['a', 'b'] })
    answer({ params: {} })
    expect((await p)?.length).toBe(2)
  })

  it('does nothing without targets', async () => {
    const hub = stubHub(() => ({ status: 200, json: { ok: true, error: null, detail: null } }))
    expect(await perform(stop, [])).toEqual([])
    expect(pending.value).toBeNull()
    expect(hub.calls).toHaveLength(0)
  })
})
