import { describe, expect, it } from 'vitest'
import { exitMeaning, hostHistory, jobDetails } from '../src/lib/jobs'
import type { Job } from '../src/lib/types'

function job(extra: Partial<Job> = {}, metrics: Record<string, number> = {}): Job {
  return { id: 'ice#7', source: 'ice', client: 'c', server: 'r1', state: 'done', file: '/src/a.c', started: 10, ended: 12, metrics, ...extra }
}

describe('exitMeaning', () => {
  it("explains icecream's own statuses", () => {
    expect(exitMeaning(118)).toBe('118 · the client was killed (or went away)')
    expect(exitMeaning(110)).toBe('110 · the compiler is missing')
  })
  it('tells success, compiler errors and signals apart', () => {
    expect(exitMeaning(0)).toBe('0 · success')
    expect(exitMeaning(1)).toBe('1 · the compiler reported errors')
    expect(exitMeaning(137)).toBe('137 · killed by signal 9 (SIGKILL)')
    expect(exitMeaning(undefined)).toBe('–')
  })
})

describe('jobDetails', () => {
  it('names sizes compressed and uncompressed and explains the exit code', () => {
    const rows = Object.fromEntries(
      jobDetails(job({ state: 'failed' }, { exitcode: 118, in_compressed: 1024, in_uncompressed: 4096, user_msec: 120, sys_msec: 30, pfaults: 9, real_msec: 2000, queue_msec: 5 })).map((r) => [r.key, r.value]),
    )
    expect(rows.in).toBe('1.0 KiB compressed / 4.0 KiB uncompressed (25 %)')
    expect(rows.exit).toBe('118 · the client was killed (or went away)')
    expect(rows.cpu).toBe('120 ms / 30 ms')
    expect(rows.pfaults).toBe('9')
    expect(rows.duration).toBe('2.00 s')
    expect(rows.queue).toBe('5 ms')
  })
  it('says a local job has no known result', () => {
    const rows = Object.fromEntries(jobDetails(job({ server: 'c' }, { result_unknown: 1 })).map((r) => [r.key, r.value]))
    expect(rows.state).toBe('finished (local, result unknown)')
    expect(rows.exit).toMatch(/unknown/)
    expect(rows.server).toBe('c (local)')
  })
})

describe('hostHistory', () => {
  it("buckets a host's finished jobs over the window, with its mean time and traffic", () => {
    const now = 1000
    const jobs = [
      job({ id: 'ice#1', server: 'r1', state: 'done', ended: 950 }, { real_msec: 100, in_compressed: 10, out_compressed: 5 }),
      job({ id: 'ice#2', server: 'r1', state: 'failed', ended: 990 }, { real_msec: 300 }),
      job({ id: 'ice#3', server: 'r2', state: 'done', ended: 990 }),
      job({ id: 'ice#4', server: 'r1', state: 'done', ended: 100 }), // before the window
      job({ id: 'ice#5', server: 'r1', state: 'running', ended: null }),
    ]
    const h = hostHistory(jobs, 'ice', 'r1', now, 100, 10)
    expect(h.done).toBe(1)
    expect(h.failed).toBe(1)
    expect(h.avgMsec).toBe(200)
    expect(h.bytesIn).toBe(10)
    expect(h.buckets).toHaveLength(10)
    expect(h.buckets[5]).toMatchObject({ done: 1, failed: 0 })
    expect(h.buckets[9]).toMatchObject({ done: 0, failed: 1 })
  })
})
