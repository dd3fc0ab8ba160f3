// A compile job's details (issue 12: the job list opens one), and what its exit code means.
import { resultUnknown } from './counters'
import type { Job } from './types'

/**
 * Exit statuses icecream's daemon and client use for their own failures (icecream's
 * services/exitcode.h, inherited from distcc), as opposed to the compiler's own exit.
 */
const ICECREAM_EXITS: Record<number, string> = {
  100: 'icecream failed (general failure)',
  101: 'bad arguments',
  102: 'could not bind a socket',
  103: 'could not connect',
  104: 'the compiler crashed',
  105: 'out of memory',
  106: 'bad host specification',
  107: 'I/O error',
  108: 'truncated data',
  109: 'protocol error',
  110: 'the compiler is missing',
  111: 'icecc called itself (recursion)',
  112: 'could not drop privileges',
  113: 'network access denied',
  114: 'busy (in use by another process)',
  115: 'no such file',
  116: 'no hosts to compile on',
  117: 'no longer relevant (gone)',
  118: 'the client was killed (or went away)',
  119: 'test socket error',
}

const SIGNALS: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 6: 'SIGABRT', 9: 'SIGKILL', 11: 'SIGSEGV', 13: 'SIGPIPE', 15: 'SIGTERM' }

/** What an exit status says, in words: "0 · success", "1 · the compiler reported errors", "118 · ...". */
export function exitMeaning(code: number | undefined | null): string {
  if (code === undefined || code === null) return '–'
  if (code === 0) return '0 · success'
  const icecream = ICECREAM_EXITS[code]
  if (icecream) return `${code} · ${icecream}`
  if (code === 1) return '1 · the compiler reported errors'
  if (code > 128 && code < 160) return `${code} · killed by signal ${code - 128}${SIGNALS[code - 128] ? ` (${SIGNALS[code - 128]})` : ''}`
  if (code < 0) return `${code} · killed by signal ${-code}${SIGNALS[-code] ? ` (${SIGNALS[-code]})` : ''}`
  return `${code} · the compiler's exit status`
}

export interface DetailRow {
  key: string
  label: string
  value: string
}

function seconds(msec: number | undefined): string {
  if (msec === undefined) return '–'
  return msec < 1000 ? `${Math.round(msec)} ms` : `${(msec / 1000).toFixed(2)} s`
}

function size(n: number | undefined): string {
  if (n === undefined) return '–'
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  return `${(n / 1048576).toFixed(2)} MiB`
}

function sizes(compressed: number | undefined, uncompressed: number | undefined): string {
  if (compressed === undefined && uncompressed === undefined) return '–'
  const ratio = compressed && uncompressed ? ` (${Math.round((compressed / uncompressed) * 100)} %)` : ''
  return `${size(compressed)} compressed / ${size(uncompressed)} uncompressed${ratio}`
}

function clock(ts: number | null | undefined): string {
  if (!ts) return '–'
  const d = new Date(ts * 1000)
  return `${d.toLocaleTimeString(undefined, { hour12: false })}.${String(d.getMilliseconds()).padStart(3, '0')}`
}

/** The rows of a job's details, in the order they are shown. */
export function jobDetails(j: Job): DetailRow[] {
  const m = j.metrics
  const local = j.state === 'local' || resultUnknown(j)
  const rows: DetailRow[] = [
    { key: 'id', label: 'Job', value: j.id },
    { key: 'file', label: 'File', value: j.file || '(no file)' },
    { key: 'state', label: 'State', value: resultUnknown(j) ? 'finished (local, result unknown)' : j.state },
    { key: 'client', label: 'Client', value: j.client || '–' },
    { key: 'server', label: local ? 'Ran on' : 'Server', value: local ? `${j.client} (local)` : j.server || '–' },
    { key: 'requested', label: 'Requested', value: clock(m.requested) },
    { key: 'started', label: 'Started', value: clock(j.started) },
    { key: 'ended', label: 'Ended', value: clock(j.ended) },
    { key: 'queue', label: 'Queue wait', value: m.queue_msec !== undefined ? seconds(m.queue_msec) : '–' },
    {
      key: 'duration',
      label: 'Duration',
      value: m.real_msec !== undefined ? seconds(m.real_msec) : j.started && j.ended ? seconds((j.ended - j.started) * 1000) : '–',
    },
  ]
  if (!local) {
    rows.push(
      { key: 'cpu', label: 'CPU user / sys', value: m.user_msec !== undefined ? `${seconds(m.user_msec)} / ${seconds(m.sys_msec)}` : '–' },
      { key: 'pfaults', label: 'Page faults', value: m.pfaults !== undefined ? String(m.pfaults) : '–' },
      { key: 'in', label: 'Sent (source)', value: sizes(m.in_compressed, m.in_uncompressed) },
      { key: 'out', label: 'Received (object)', value: sizes(m.out_compressed, m.out_uncompressed) },
      { key: 'exit', label: 'Exit code', value: j.state === 'done' || j.state === 'failed' ? exitMeaning(m.exitcode) : '–' },
    )
  } else if (resultUnknown(j)) {
    rows.push({ key: 'exit', label: 'Exit code', value: 'unknown: icecream reports none for local jobs' })
  }
  if (m.lang !== undefined) rows.push({ key: 'lang', label: 'Language', value: ['C', 'C++', 'ObjC', 'ObjC++', 'Custom'][m.lang] ?? String(m.lang) })
  return rows
}

export interface HostBucket {
  /** The bucket's start, Unix seconds. */
  from: number
  done: number
  failed: number
}

export interface HostHistory {
  buckets: HostBucket[]
  done: number
  failed: number
  /** Mean compile time of the jobs in the window, ms (null: none). */
  avgMsec: number | null
  bytesIn: number
  bytesOut: number
}

/**
 * A host's finished jobs over the last `span` seconds in `n` buckets (icemon's host view),
 * from the jobs the hub holds (its ring of finished jobs): the jobs it compiled for others
 * (server) and its own local ones.
 */
export function hostHistory(jobs: Iterable<Job>, source: string, host: string, nowSec: number, span = 900, n = 15): HostHistory {
  const start = nowSec - span
  const width = span / n
  const buckets: HostBucket[] = Array.from({ length: n }, (_, i) => ({ from: start + i * width, done: 0, failed: 0 }))
  const out: HostHistory = { buckets, done: 0, failed: 0, avgMsec: null, bytesIn: 0, bytesOut: 0 }
  let msec = 0
  let timed = 0
  for (const j of jobs) {
    if (j.source !== source || j.server !== host || !j.ended || j.ended < start || j.ended > nowSec) continue
    if (j.state !== 'done' && j.state !== 'failed') continue
    const b = buckets[Math.min(n - 1, Math.floor((j.ended - start) / width))]
    if (j.state === 'failed') {
      b.failed += 1
      out.failed += 1
    } else {
      b.done += 1
      out.done += 1
    }
    const real = j.metrics.real_msec ?? (j.started ? (j.ended - j.started) * 1000 : undefined)
    if (real !== undefined) {
      msec += real
      timed += 1
    }
    out.bytesIn += j.metrics.in_compressed ?? 0
    out.bytesOut += j.metrics.out_compressed ?? 0
  }
  out.avgMsec = timed ? msec / timed : null
  return out
}
