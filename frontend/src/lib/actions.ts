// Actions are data: each source lists the actions it has (`source.actions`), and every
// button, menu and hot-key is drawn from those lists.

import { runAction } from './api'
import { ask } from './confirm'
import { isLive } from './processes'
import { toaster } from './toasts'
import type { ActionResult, ActionSpec, Process, Source, Target } from './types'

/**
 * A button's label: the title up to its first ": " (a source may write "Pause: SLEEP null -
 * what it does" and have the rest shown as help).
 */
export function actionLabel(spec: ActionSpec): string {
  const cut = spec.title.indexOf(': ')
  return cut > 0 ? spec.title.slice(0, cut) : spec.title
}

/** The help text after the label ("" when the title is only a label). */
export function actionHelp(spec: ActionSpec): string {
  const cut = spec.title.indexOf(': ')
  return cut > 0 ? spec.title.slice(cut + 2) : ''
}

let permit: (name: string) => boolean = () => true

/** Which actions the page offers at all (lib/session.ts: the caller's role; default: all). */
export function setPermit(fn: (name: string) => boolean): void {
  permit = fn
}

let readOnly: () => boolean = () => false

/** When the page may act on nothing (lib/history.ts: while it shows the past). */
export function setReadOnly(fn: () => boolean): void {
  readOnly = fn
}

/** Whether the caller may run `spec` (no button, menu item or hot-key otherwise). */
export function permitted(spec: ActionSpec): boolean {
  return !readOnly() && permit(spec.name)
}

/** Whether `spec` may act on a node whose `labels.role` is `role` (its `roles`; none = every node). */
export function forRole(spec: ActionSpec, role: string | undefined): boolean {
  return !spec.roles?.length || (role !== undefined && spec.roles.includes(role))
}

/**
 * The actions `source` offers on a target of `kind` (process, group, source, node, job)
 * that the caller may run; for a node of `role` (its `labels.role`), only those for that role.
 */
export function actionsFor(source: Source | undefined, kind: string, role?: string): ActionSpec[] {
  if (!source) return []
  return source.actions.filter(
    (a) => a.targets.includes(kind) && permitted(a) && (kind !== 'node' || role === undefined || forRole(a, role)),
  )
}

/** A process's inline buttons (table rows, cards): start when not running, stop when running, restart. */
export function inlineActions(source: Source | undefined, p: Process): { spec: ActionSpec; disabled: boolean }[] {
  const live = isLive(p.state)
  const out: { spec: ActionSpec; disabled: boolean }[] = []
  for (const spec of actionsFor(source, 'process')) {
    if (spec.name === 'start' && !live) out.push({ spec, disabled: false })
    else if (spec.name === 'stop' && live) out.push({ spec, disabled: p.state === 'STOPPING' })
    else if (spec.name === 'restart') out.push({ spec, disabled: false })
  }
  return out
}

/** The actions every one of `sources` offers on `kind` (for bulk actions across hosts). */
export function commonActions(sources: (Source | undefined)[], kind: string): ActionSpec[] {
  if (sources.length === 0) return []
  const [first, ...rest] = sources
  return actionsFor(first, kind).filter((a) => rest.every((s) => actionsFor(s, kind).some((b) => b.name === a.name)))
}

export interface BulkResult {
  target: Target
  result: ActionResult
}

/** Run one action on many targets at once (at most `parallel` in flight). */
export async function runOnAll(
  targets: Target[],
  name: string,
  params: Record<string, unknown> = {},
  parallel = 8,
): Promise<BulkResult[]> {
  const out: BulkResult[] = new Array(targets.length)
  let next = 0
  async function worker(): Promise<void> {
    while (next < targets.length) {
      const i = next++
      out[i] = { target: targets[i], result: await runAction(targets[i], name, params) }
    }
  }
  await Promise.all(Array.from({ length: Math.min(parallel, targets.length) }, worker))
  return out
}

/** A one-line summary of bulk results: "stop: 3 ok, 1 failed (sv2:web:api: not running)". */
export function summarize(name: string, results: BulkResult[]): { ok: boolean; text: string } {
  const failed = results.filter((r) => !r.result.ok)
  const okCount = results.length - failed.length
  if (failed.length === 0) return { ok: true, text: `${name}: ${okCount} ok` }
  const first = failed[0]
  const why = first.result.error ? `${first.target.id}: ${first.result.error}` : first.target.id
  return { ok: false, text: `${name}: ${okCount} ok, ${failed.length} failed (${why}${failed.length > 1 ? ', …' : ''})` }
}

/**
 * What a button does: ask first when the action is marked `confirm` or has parameters
 * (or acts on more than one target), run it on every target, and toast the outcome.
 * Resolves to the results, or null when the user said no.
 */
export async function perform(spec: ActionSpec, targets: Target[]): Promise<BulkResult[] | null> {
  if (targets.length === 0) return []
  if (readOnly()) {
    toaster.show('The past is read-only: go back to live to act', { key: 'read-only', severity: 'error' })
    return null
  }
  let params: Record<string, unknown> = {}
  if (spec.confirm || spec.params.length > 0 || targets.length > 1) {
    const what = targets.length === 1 ? targets[0].id : `${targets.length} ${plural(targets[0].kind)}`
    const label = actionLabel(spec)
    const help = actionHelp(spec)
    const answer = await ask({
      title: `${label}?`,
      text: `${label} ${what}${help ? `. ${help.charAt(0).toUpperCase()}${help.slice(1)}` : ''}`,
      items: targets.length > 1 ? targets.map((t) => t.id) : undefined,
      danger: spec.confirm,
      confirmLabel: label,
      params: spec.params,
    })
    if (!answer) return null
    params = answer.params
  }
  const results = await runOnAll(targets, spec.name, params)
  const { ok, text } = summarize(actionLabel(spec), results)
  toaster.show(text, { key: `action:${spec.name}`, severity: ok ? 'success' : 'error' })
  return results
}

function plural(kind: string): string {
  return kind === 'process' ? 'processes' : `${kind}s`
}
