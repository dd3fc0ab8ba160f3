// One definition for each job counter (docs/architecture.md, "Counters"), read by every view:
// the Overview's Jobs group, a source card, the cluster summary and the job list's chips.
//
// - waiting / running / local: jobs in that state NOW. An icecream source sends them in
//   `info.totals` (waiting_jobs, running_jobs, local_now) in the same commit as the jobs,
//   so they equal the job list of the same snapshot; other sources count their jobs.
// - done / failed: jobs FINISHED since the hub connected to the scheduler (icecream's
//   cumulative totals: remote compiles by exit code), or, for other sources, the finished
//   jobs the hub remembers (its ring).
// - unknown: local jobs finished since the hub connected; icecream reports no exit code
//   for them, so they are neither done nor failed ("finished (local, result unknown)").
// - local_total: local jobs begun since the hub connected (running or finished).
import type { Job, Source } from './types'

export interface JobCounts {
  waiting: number
  running: number
  local: number
  done: number
  failed: number
  unknown: number
  local_total: number
}

export const JOB_COUNTERS: readonly (keyof JobCounts)[] = ['waiting', 'running', 'local', 'done', 'failed', 'unknown']

/** A finished local job: the protocol says it ended, not how. */
export function resultUnknown(j: Pick<Job, 'state' | 'metrics'>): boolean {
  return j.state === 'done' && !!j.metrics?.result_unknown
}

/** The state word a view shows for a job: never "done" for a local job nobody knows the end of. */
export function jobStateLabel(j: Pick<Job, 'state' | 'metrics'>): string {
  return resultUnknown(j) ? 'finished (local, result unknown)' : j.state
}

/** The state class (colour) of a job: `unknown` for a local job's unknown result. */
export function jobStateClass(j: Pick<Job, 'state' | 'metrics'>): string {
  return resultUnknown(j) ? 'unknown' : j.state
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null
}

export function emptyCounts(): JobCounts {
  return { waiting: 0, running: 0, local: 0, done: 0, failed: 0, unknown: 0, local_total: 0 }
}

/** Counts of the jobs given (all of one source, or a list): what the hub holds. */
export function countJobs(jobs: Iterable<Pick<Job, 'state' | 'metrics'>>): JobCounts {
  const c = emptyCounts()
  for (const j of jobs) {
    if (resultUnknown(j)) {
      c.unknown += 1
      c.local_total += 1
    } else {
      c[j.state] += 1
      if (j.state === 'local') c.local_total += 1
    }
  }
  return c
}

/** A source's job counters by the definitions above: its totals where it sends them. */
export function sourceJobCounts(source: Pick<Source, 'info'> | undefined, jobs: Iterable<Pick<Job, 'state' | 'metrics'>>): JobCounts {
  const held = countJobs(jobs)
  const t = source?.info?.totals
  if (!t || typeof t !== 'object' || Array.isArray(t)) return held
  const totals = t as Record<string, unknown>
  const pick = (key: string, fallback: number): number => num(totals[key]) ?? fallback
  return {
    waiting: pick('waiting_jobs', held.waiting),
    running: pick('running_jobs', held.running),
    local: pick('local_now', held.local),
    done: pick('jobs_done', held.done),
    failed: pick('jobs_failed', held.failed),
    unknown: pick('local_done', held.unknown),
    local_total: pick('local_jobs', held.local_total),
  }
}

/** The sum of several sources' counters. */
export function addCounts(a: JobCounts, b: JobCounts): JobCounts {
  const out = emptyCounts()
  for (const k of Object.keys(out) as (keyof JobCounts)[]) out[k] = a[k] + b[k]
  return out
}
