import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { actionsFor } from '../src/lib/actions'
import { runAction, readLog } from '../src/lib/api'
import { farmActions } from '../src/lib/farm'
import { formatWait, loginError, mayAct, session, type Me } from '../src/lib/session'
import type { ActionSpec, Source } from '../src/lib/types'

const TABLE = { '*': 'operator', update: 'admin', reload: 'admin', shutdown: 'admin', reread: 'admin' }
const me = (role: string, login = true): Me => ({
  name: role,
  role,
  sources: [],
  via: 'session',
  login,
  csrf: login ? 'tok-' + role : null,
  expires: null,
  action_roles: TABLE,
})

describe('mayAct (the hub table: accounts.ACTION_ROLES)', () => {
  it('viewer: nothing; operator: all but supervisord-level; admin: all', () => {
    for (const a of ['start', 'stop', 'update', 'shutdown', 'block']) expect(mayAct(me('viewer'), a)).toBe(false)
    for (const a of ['start', 'stop', 'restart', 'block', 'pause']) expect(mayAct(me('operator'), a)).toBe(true)
    for (const a of ['update', 'reload', 'shutdown', 'reread']) expect(mayAct(me('operator'), a)).toBe(false)
    for (const a of ['start', 'update', 'shutdown', 'frob']) expect(mayAct(me('admin'), a)).toBe(true)
  })

  it('no caller known: nothing; a hub without login: everything', () => {
    expect(mayAct(null, 'start')).toBe(false)
    expect(mayAct({ ...me('admin', false), name: 'anonymous' }, 'shutdown')).toBe(true)
  })

  it('an unknown role acts on nothing; a hub without the table still needs operator', () => {
    expect(mayAct({ ...me('guest') }, 'start')).toBe(false)
    const old = { ...me('viewer'), action_roles: undefined }
    expect(mayAct(old, 'start')).toBe(false)
    expect(mayAct({ ...old, role: 'operator' }, 'start')).toBe(true)
  })
})

describe('loginError', () => {
  it('one text for a wrong username or password', () => {
    expect(loginError(401, null)).toEqual({ ok: false, error: 'Wrong username or password.', retryAfter: null })
    expect(loginError(422, null).error).toBe('Wrong username or password.')
  })
  it('a 429 says how long to wait (Retry-After)', () => {
    expect(loginError(429, '42')).toEqual({ ok: false, error: 'Too many failed logins. Try again in 42 s.', retryAfter: 42 })
    expect(loginError(429, '125').error).toBe('Too many failed logins. Try again in 2 min 5 s.')
    expect(loginError(429, null)).toEqual({ ok: false, error: 'Too many failed logins. Try again later.', retryAfter: null })
  })
  it('anything else names the status', () => {
    expect(loginError(502, null).error).toBe('The hub answered HTTP 502. Try again.')
  })
  it('formatWait', () => {
    expect(formatWait(5)).toBe('5 s')
    expect(formatWait(60)).toBe('1 min')
    expect(formatWait(61)).toBe('1 min 1 s')
  })
})

describe('Session against a stubbed hub', () => {
  let answers: Record<string, { status: number; body: unknown; headers?: Record<string, string> }>
  let calls: { url: string; method: string; headers: Headers }[]

  beforeEach(() => {
    calls = []
    answers = {}
    vi.stubGlobal('window', { location: { origin: 'http://hub:1', pathname: '/' } })
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string, init?: RequestInit) => {
        const path = new URL(String(url)).pathname
        calls.push({ url: path, method: init?.method ?? 'GET', headers: new Headers(init?.headers) })
        const a = answers[path] ?? { status: 404, body: { error: 'no' } }
        return new Response(JSON.stringify(a.body), { status: a.status, headers: a.headers })
      }),
    )
  })
  afterEach(async () => {
    answers['/api/logout'] = { status: 200, body: { ok: true } }
    await session.logout()
    vi.unstubAllGlobals()
  })

  it('a 401 from /api/me means the login page', async () => {
    answers['/api/me'] = { status: 401, body: { error: 'login required' } }
    expect(await session.check()).toBe('login')
    expect(session.me).toBeNull()
    expect(session.reason).toBeNull() // never logged in: nothing "ended"
  })

  it('login: the CSRF token from the answer goes with every POST, never with a GET', async () => {
    answers['/api/login'] = { status: 200, body: me('operator') }
    answers['/api/actions'] = { status: 200, body: { ok: true, error: null, detail: null } }
    answers['/api/processes/x/log'] = { status: 200, body: { text: '', offset: 0, end: 0, size: 0, reset: false } }
    expect(await session.login('operator', 'pw')).toEqual({ ok: true, error: null, retryAfter: null })
    expect(session.state).toBe('in')
    await runAction({ kind: 'process', id: 'a:b:c' }, 'stop')
    await readLog('x', 'stdout', null)
    const post = calls.find((c) => c.url === '/api/actions')!
    expect(post.headers.get('x-csrf-token')).toBe('tok-operator')
    expect(calls.find((c) => c.url === '/api/processes/x/log')!.headers.get('x-csrf-token')).toBeNull()
    expect(session.may('stop')).toBe(true)
    expect(session.may('shutdown')).toBe(false)
    await session.logout()
    expect(calls.at(-1)).toMatchObject({ url: '/api/logout', method: 'POST' })
    expect(calls.at(-1)!.headers.get('x-csrf-token')).toBe('tok-operator')
    expect(session.state).toBe('login')
  })

  it('a wrong password and the rate limit', async () => {
    answers['/api/login'] = { status: 401, body: { error: 'wrong username or password' } }
    expect((await session.login('x', 'y')).error).toBe('Wrong username or password.')
    answers['/api/login'] = { status: 429, body: { error: 'too many' }, headers: { 'Retry-After': '17' } }
    expect(await session.login('x', 'y')).toMatchObject({ ok: false, retryAfter: 17 })
    expect(session.state).not.toBe('in')
  })

  it('a 401 from any API call ends the session, with a reason', async () => {
    answers['/api/me'] = { status: 200, body: me('admin') }
    expect(await session.check()).toBe('in')
    const states: string[] = []
    const off = session.onChange((s) => states.push(s))
    answers['/api/actions'] = { status: 401, body: { ok: false, error: 'login required', detail: null } }
    const r = await runAction({ kind: 'source', id: 's' }, 'update')
    off()
    expect(r.ok).toBe(false)
    expect(states).toEqual(['login'])
    expect(session.reason).toMatch(/session has ended/)
    session.ended() // again: no second change
    expect(states).toEqual(['login'])
  })

  it('the buttons follow the role: actionsFor and farmActions', async () => {
    const spec = (name: string, targets: string[]): ActionSpec =>
      ({ name, title: name, targets, params: [], confirm: false, hotkey: null }) as unknown as ActionSpec
    const source = {
      id: 's',
      actions: [spec('stop', ['process']), spec('shutdown', ['source']), spec('pause', ['source', 'node'])],
    } as unknown as Source
    const names = () => actionsFor(source, 'process').concat(actionsFor(source, 'source')).map((a) => a.name)
    answers['/api/me'] = { status: 200, body: me('viewer') }
    await session.check()
    expect(names()).toEqual([])
    expect(farmActions(source)).toEqual({ master: [], slave: [] })
    answers['/api/me'] = { status: 200, body: me('operator') }
    await session.check()
    expect(names()).toEqual(['stop', 'pause'])
    answers['/api/me'] = { status: 200, body: me('admin') }
    await session.check()
    expect(names()).toEqual(['stop', 'shutdown', 'pause'])
    answers['/api/me'] = { status: 200, body: { ...me('admin', false), name: 'anonymous' } }
    await session.check()
    expect(names()).toEqual(['stop', 'shutdown', 'pause'])
  })
})
