// Who is using the page (GET /api/me) and what they may do. With no [[users]] on the hub,
// /api/me answers `login: false` and the page is as it always was: no login page, every
// button. With users: a 401 (from /api/me, any API call or the stream's close code 4401)
// shows the login page; the role decides which action buttons, menus and hot-keys exist
// (the hub still checks every call: this only hides what would be refused).

import { reactive } from 'vue'
import { setPermit } from './actions'
import { hubFetch, setCsrfToken, setUnauthorizedHandler } from './api'

export type Role = 'viewer' | 'operator' | 'admin'
const RANK: Record<string, number> = { viewer: 0, operator: 1, admin: 2 }

/** `GET /api/me`'s answer (src/fleetwatch/web/auth.py, MeOut). */
export interface Me {
  name: string
  role: string
  sources: string[]
  via: string
  login: boolean
  csrf: string | null
  expires: number | null
  /** The role each action needs; "*": every action not named. */
  action_roles?: Record<string, string>
}

/**
 * - `unknown`: not asked yet, or the hub did not answer (the page shows the app, no buttons)
 * - `login`: the hub wants a login (the login page)
 * - `in`: a caller is known (`me`): an account, or `anonymous` on a hub without login
 */
export type SessionState = 'unknown' | 'login' | 'in'

export interface LoginOutcome {
  ok: boolean
  error: string | null
  /** Seconds to wait (a 429 answer's Retry-After), else null. */
  retryAfter: number | null
}

/** The rule without the page: may `me` run `action`? (the hub's accounts.required_role) */
export function mayAct(me: Me | null, action: string): boolean {
  if (!me) return false
  if (!me.login) return true // no [[users]]: everyone may do everything, as before
  const table = me.action_roles ?? {}
  const needed = table[action] ?? table['*'] ?? 'operator'
  return (RANK[me.role] ?? -1) >= (RANK[needed] ?? Infinity)
}

/** The text a failed login shows: one text whatever was wrong; a 429 says how long to wait. */
export function loginError(status: number, retryAfter: string | null): LoginOutcome {
  if (status === 429) {
    const secs = Number.parseInt(retryAfter ?? '', 10)
    const wait = Number.isFinite(secs) && secs > 0 ? secs : null
    const when = wait === null ? 'later' : `in ${formatWait(wait)}`
    return { ok: false, error: `Too many failed logins. Try again ${when}.`, retryAfter: wait }
  }
  if (status === 401 || status === 400 || status === 422) {
    return { ok: false, error: 'Wrong username or password.', retryAfter: null }
  }
  return { ok: false, error: `The hub answered HTTP ${status}. Try again.`, retryAfter: null }
}

export function formatWait(secs: number): string {
  if (secs < 60) return `${secs} s`
  const m = Math.floor(secs / 60)
  const s = secs % 60
  return s ? `${m} min ${s} s` : `${m} min`
}

class Session {
  state: SessionState = 'unknown'
  me: Me | null = null
  /** Why the login page is shown again ("Your session ended"), or null. */
  reason: string | null = null
  private listeners = new Set<(state: SessionState) => void>()

  get loginOn(): boolean {
    return Boolean(this.me?.login)
  }

  get isAdmin(): boolean {
    return this.me !== null && this.me.role === 'admin'
  }

  may(action: string): boolean {
    return mayAct(this.me, action)
  }

  /** Called with the new state each time it changes. */
  onChange(fn: (state: SessionState) => void): () => void {
    this.listeners.add(fn)
    return () => this.listeners.delete(fn)
  }

  private set(state: SessionState, me: Me | null): void {
    this.me = me
    setCsrfToken(me?.csrf ?? null)
    const changed = state !== this.state
    this.state = state
    if (changed) for (const fn of this.listeners) fn(state)
  }

  /** Ask the hub who we are. Resolves to the state (a network error leaves `unknown`). */
  async check(): Promise<SessionState> {
    let response: Response
    try {
      response = await hubFetch('api/me', {}, true)
    } catch {
      return this.state
    }
    if (response.status === 401) {
      this.ended(this.state === 'in' ? 'Your session has ended. Please log in again.' : null)
    } else if (response.ok) {
      try {
        this.set('in', (await response.json()) as Me)
      } catch {
        /* not the hub's JSON: stay as we are */
      }
    }
    return this.state
  }

  async login(username: string, password: string): Promise<LoginOutcome> {
    let response: Response
    try {
      response = await hubFetch(
        'api/login',
        {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ username, password }),
        },
        true,
      )
    } catch (err) {
      return { ok: false, error: `The hub cannot be reached (${String(err)}).`, retryAfter: null }
    }
    if (!response.ok) return loginError(response.status, response.headers.get('Retry-After'))
    const me = (await response.json()) as Me
    this.reason = null
    this.set('in', me)
    return { ok: true, error: null, retryAfter: null }
  }

  async logout(): Promise<void> {
    try {
      await hubFetch('api/logout', { method: 'POST' }, true)
    } catch {
      /* the hub is away: the cookie still goes when it expires; the page forgets it now */
    }
    this.reason = null
    this.set('login', null)
  }

  /** The hub said 401: the session is over (or there never was one). */
  ended(reason: string | null = 'Your session has ended. Please log in again.'): void {
    if (this.state === 'login') return
    this.reason = this.state === 'in' ? reason : null
    this.set('login', null)
  }
}

export const session = reactive(new Session()) as Session

setUnauthorizedHandler(() => session.ended())
setPermit((name) => session.may(name))
