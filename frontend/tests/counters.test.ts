import { describe, expect, it } from 'vitest'
import { addCounts, countJobs, jobStateClass, jobStateLabel, resultUnknown, sourceJobCounts } from '../src/lib/counters'
import type { Job } from '../src/lib/types'

function job(state: Job['state'], metrics: Record<string, number> = {}): Pick<Job, 'state' | 'metrics'> {
  return { state, metrics }
}

describe('job counters (one definition each, issue 12)', () => {
  it('never calls a local job of unknown result done', () => {
    const local = job('done', { result_unknown: 1 })
    expect(resultUnknown(local)).toBe(true)
    expect(jobStateLabel(local)).toBe('finished (local, result unknown)')
    expect(jobStateClass(local)).toBe('unknown')
    expect(jobStateLabel(job('done', { exitcode: 0 }))).toBe('done')
    expect(resultUnknown(job('failed', { result_unknown: 1 }))).toBe(false)
  })

  it('counts the jobs it is given, local results apart', () => {
    const c = countJobs([job('waiting'), job('running'), job('local'), job('done'), job('done', { result_unknown: 1 }), job('failed')])
    expect(c).toEqual({ waiting: 1, running: 1, local: 1, done: 1, failed: 1, unknown: 1, local_total: 2 })
  })

  it("reads an icecream source's totals: cumulative done/failed, current states", () => {
    const source = {
      info: { totals: { jobs_done: 91, jobs_failed: 2, local_done: 12, local_jobs: 13, waiting_jobs: 0, running_jobs: 3, local_now: 1 } },
    }
    const held = [job('running'), job('running'), job('running'), job('local'), job('done')]
    expect(sourceJobCounts(source, held)).toEqual({ waiting: 0, running: 3, local: 1, done: 91, failed: 2, unknown: 12, local_total: 13 })
  })

  it('falls back to the jobs held for a source without totals (a build farm)', () => {
    expect(sourceJobCounts({ info: {} }, [job('done'), job('failed')])).toMatchObject({ done: 1, failed: 1 })
    expect(sourceJobCounts(undefined, [job('running')]).running).toBe(1)
    expect(sourceJobCounts({ info: { totals: [] } }, [job('done')]).done).toBe(1)
  })

  it('sums sources', () => {
    const a = countJobs([job('done')])
    const b = countJobs([job('done'), job('failed')])
    expect(addCounts(a, b)).toMatchObject({ done: 2, failed: 1 })
  })
})
