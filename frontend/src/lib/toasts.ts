// Toasts, coalesced: a toast for a subject that already has one on screen updates it
// (count + latest text) instead of stacking another, so a flapping process shows one
// toast that counts, never a flood. At most `maxVisible` show; the rest are summed up
// ("+N more", which opens the notifications page).

import { shallowRef } from 'vue'
import type { Note } from './types'

export type Severity = 'info' | 'success' | 'warning' | 'error'

export interface Toast {
  id: number
  key: string
  severity: Severity
  title: string
  text: string
  count: number
  at: number
  expires: number
  /** The notification it shows (its subject can be muted from the toast). */
  note?: Note
}

export interface ToastOptions {
  /** Toasts with the same key coalesce (a notification's subject id, an action's name). */
  key?: string
  severity?: Severity
  text?: string
  /** ms on screen after the last update; errors stay twice as long. */
  ttl?: number
  /** The count to show, when the caller knows it (a flapping note's `count`). */
  count?: number
  note?: Note
}

export class Toaster {
  readonly toasts = shallowRef<Toast[]>([])
  /** Toasts that did not fit on screen since the last clear. */
  readonly overflow = shallowRef(0)
  private nextId = 1
  private timer: ReturnType<typeof setTimeout> | null = null

  constructor(
    readonly maxVisible = 3,
    readonly ttl = 5000,
    private readonly now: () => number = () => Date.now(),
    private readonly later: (fn: () => void, ms: number) => ReturnType<typeof setTimeout> | null = (fn, ms) =>
      setTimeout(fn, ms),
  ) {}

  show(title: string, opts: ToastOptions = {}): Toast {
    const severity = opts.severity ?? 'info'
    const key = opts.key ?? `${severity}:${title}`
    const now = this.now()
    const ttl = (opts.ttl ?? this.ttl) * (severity === 'error' ? 2 : 1)
    const list = this.toasts.value
    const same = list.find((t) => t.key === key)
    let toast: Toast
    if (same) {
      toast = {
        ...same,
        severity: worse(same.severity, severity),
        title,
        text: opts.text ?? '',
        count: opts.count ?? same.count + 1,
        at: now,
        expires: now + ttl,
        note: opts.note ?? same.note,
      }
      this.toasts.value = list.map((t) => (t === same ? toast : t))
    } else {
      toast = { id: this.nextId++, key, severity, title, text: opts.text ?? '', count: opts.count ?? 1, at: now, expires: now + ttl }
      if (opts.note) toast.note = opts.note
      let next = list.concat(toast)
      if (next.length > this.maxVisible) {
        this.overflow.value += next.length - this.maxVisible
        next = next.slice(next.length - this.maxVisible)
      }
      this.toasts.value = next
    }
    this.arm()
    return toast
  }

  dismiss(id: number): void {
    this.toasts.value = this.toasts.value.filter((t) => t.id !== id)
    if (this.toasts.value.length === 0) this.overflow.value = 0
  }

  /** Dismiss every toast `which` picks (those of a subject just muted). */
  dismissWhere(which: (t: Toast) => boolean): void {
    const left = this.toasts.value.filter((t) => !which(t))
    if (left.length !== this.toasts.value.length) this.toasts.value = left
    if (left.length === 0) this.overflow.value = 0
  }

  clear(): void {
    this.toasts.value = []
    this.overflow.value = 0
  }

  /** Drop expired toasts (called by the timer; tests call it directly). */
  expire(): void {
    const now = this.now()
    const left = this.toasts.value.filter((t) => t.expires > now)
    if (left.length !== this.toasts.value.length) this.toasts.value = left
    if (left.length === 0) this.overflow.value = 0
    this.arm()
  }

  private arm(): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    const list = this.toasts.value
    if (list.length === 0) return
    const next = Math.min(...list.map((t) => t.expires))
    this.timer = this.later(() => this.expire(), Math.max(0, next - this.now()) + 10)
  }
}

const ORDER: Severity[] = ['info', 'success', 'warning', 'error']

function worse(a: Severity, b: Severity): Severity {
  return ORDER.indexOf(a) >= ORDER.indexOf(b) ? a : b
}

export const toaster = new Toaster()
