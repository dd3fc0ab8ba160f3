import { afterEach, describe, expect, it, vi } from 'vitest'
import { ApiError, apiUrl, appBase, fetchNotes, readLog, runAction, streamUrl } from '../src/lib/api'

const at = (pathname: string, origin = 'http://hub.example:22000') => ({ origin, pathname })

describe('appBase', () => {
  it('is the directory the page was served from, ending in /', () => {
    expect(appBase(at('/'))).toBe('http://hub.example:22000/')
    expect(appBase(at('/fleet/'))).toBe('http://hub.example:22000/fleet/')
    expect(appBase(at('/fleet'))).toBe('http://hub.example:22000/fleet/')
    expect(appBase(at('/fleet/index.html'))).toBe('http://hub.example:22000/fleet/')
    expect(appBase(at('/index.html'))).toBe('http://hub.example:22000/')
    expect(appBase(at('/a/b/c'))).toBe('http://hub.example:22000/a/b/c/')
    expect(appBase(at('/a/b.c/d/'))).toBe('http://hub.example:22000/a/b.c/d/')
  })

  it('reads window.location by default', () => {
    vi.stubGlobal('window', { location: at('/fleet/index.html', 'https://ops.example') })
    try {
      expect(appBase()).toBe('https://ops.example/fleet/')
      expect(apiUrl('api/fleet')).toBe('https://ops.example/fleet/api/fleet')
      expect(streamUrl()).toBe('wss://ops.example/fleet/api/stream')
    } finally {
      vi.unstubAllGlobals()
    }
  })
})

describe('apiUrl', () => {
  it('resolves against the base, also for a leading slash (never escapes the sub-path)', () => {
    expect(apiUrl('api/fleet', 'http://h/')).toBe('http://h/api/fleet')
    expect(apiUrl('api/fleet', 'http://h/fleet/')).toBe('http://h/fleet/api/fleet')
    expect(apiUrl('/api/fleet', 'http://h/fleet/')).toBe('http://h/fleet/api/fleet')
    expect(apiUrl('api/processes/sv1%3Aweb%3Aa/log?channel=stdout', 'https://h:8443/x/')).toBe(
      'https://h:8443/x/api/processes/sv1%3Aweb%3Aa/log?channel=stdout',
    )
  })
})

describe('streamUrl', () => {
  it('uses ws: for http and wss: for https, under the sub-path', () => {
    expect(streamUrl('http://h:22000/')).toBe('ws://h:22000/api/stream')
    expect(streamUrl('http://h:22000/fleet/')).toBe('ws://h:22000/fleet/api/stream')
    expect(streamUrl('https://h/')).toBe('wss://h/api/stream')
    expect(streamUrl('https://h:8443/fleet/')).toBe('wss://h:8443/fleet/api/stream')
  })
})

describe('HTTP calls', () => {
  afterEach(() => {
    vi.unstubAllGlobals()
  })

  function stub(status: number, body: unknown) {
    const calls: { url: string; init?: RequestInit }[] = []
    vi.stubGlobal('window', { location: at('/fleet/') })
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string, init?: RequestInit) => {
        calls.push({ url: String(url), init })
        const text = typeof body === 'string' ? body : JSON.stringify(body)
        return new Response(text, { status })
      }),
    )
    return calls
  }

  it('runAction posts {target, name, params} as JSON', async () => {
    const calls = stub(200, { ok: true, error: null, detail: { pid: 4 } })
    const r = await runAction({ kind: 'process', id: 'sv1:web:a' }, 'start')
    expect(r).toEqual({ ok: true, error: null, detail: { pid: 4 } })
    expect(calls[0].url).toBe('http://hub.example:22000/fleet/api/actions')
    expect(calls[0].init?.method).toBe('POST')
    expect(new Headers(calls[0].init?.headers).get('content-type')).toBe('application/json')
    expect(JSON.parse(String(calls[0].init?.body))).toEqual({ target: { kind: 'process', id: 'sv1:web:a' }, name: 'start', params: {} })
  })

  it('runAction turns a refusal into {ok: false, error}', async () => {
    stub(409, { error: 'sv1:web:a has no action frob' })
    expect(await runAction({ kind: 'process', id: 'sv1:web:a' }, 'frob')).toEqual({
      ok: false,
      error: 'sv1:web:a has no action frob',
      detail: null,
    })
    stub(502, 'Bad gateway')
    expect(await runAction({ kind: 'source', id: 'sv1' }, 'update')).toEqual({ ok: false, error: 'HTTP 502', detail: null })
  })

  it('readLog asks for a window of the log, with the id encoded', async () => {
    const chunk = { text: 'hello\n', offset: 10, end: 16, size: 16, reset: false }
    const calls = stub(200, chunk)
    expect(await readLog('sv1:mail:mail relay', 'stderr', 10, 1024)).toEqual(chunk)
    const url = new URL(calls[0].url)
    expect(url.pathname).toBe('/fleet/api/processes/sv1%3Amail%3Amail%20relay/log')
    expect(Object.fromEntries(url.searchParams)).toEqual({ channel: 'stderr', length: '1024', offset: '10' })
    await readLog('x', 'stdout', null)
    expect(Object.fromEntries(new URL(calls[1].url).searchParams)).toEqual({ channel: 'stdout', length: '65536' })
  })

  it('throws an ApiError carrying the status and the hub error', async () => {
    stub(404, { error: 'no process x' })
    const err = await readLog('x', 'stdout', null).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ApiError)
    expect((err as ApiError).status).toBe(404)
    expect((err as ApiError).message).toBe('no process x')
    stub(500, 'oops')
    const err2 = await fetchNotes().catch((e: unknown) => e)
    expect((err2 as ApiError).message).toBe('HTTP 500')
  })

  it('fetchNotes asks for a limit', async () => {
    const calls = stub(200, [])
    expect(await fetchNotes(20)).toEqual([])
    expect(calls[0].url).toBe('http://hub.example:22000/fleet/api/notifications?limit=20')
  })
})
