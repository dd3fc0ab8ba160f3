import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { compile, isEmptyQuery, matches } from '../src/lib/filters'

interface Case {
  query: string
  matches: string[]
  note?: string
}

interface Vectors {
  objects: Record<string, Record<string, unknown>>
  cases: Case[]
}

const vectors = JSON.parse(
  readFileSync(new URL('../../tests/vectors/filters.json', import.meta.url), 'utf8'),
) as Vectors
const entries = Object.entries(vectors.objects)

function selected(query: string, objects: [string, Record<string, unknown>][] = entries): string[] {
  const predicate = compile(query)
  return objects.filter(([, obj]) => predicate(obj)).map(([name]) => name)
}

describe('shared vectors (tests/vectors/filters.json)', () => {
  it('has cases and objects', () => {
    expect(entries.length).toBeGreaterThan(5)
    expect(vectors.cases.length).toBeGreaterThanOrEqual(132)
  })

  it.each(vectors.cases.map((c) => [JSON.stringify(c.query), c] as const))(
    'query %s',
    (_label, c) => {
      expect(selected(c.query), c.note).toEqual(c.matches)
      // matches() agrees with compile(), on every object
      for (const [name, obj] of entries) {
        expect(matches(c.query, obj), `${name}: ${c.note ?? ''}`).toBe(c.matches.includes(name))
      }
    },
  )
})

describe('TypeScript-specific behaviour', () => {
  const objs: [string, Record<string, unknown>][] = [
    ['a', { id: 's:g:a', name: 'a', group: 'g', state: 'RUNNING', nested: { Deep: { K: 1 } } }],
    ['proto', { id: 'p', name: 'constructor', toString: 'x' }],
    ['undef', { id: 'u', name: 'u', state: undefined }],
    ['nan', { id: 'n', name: 'n', value: Number.NaN, inf: Number.POSITIVE_INFINITY, neg: -Infinity }],
  ]

  it('caches compiled queries', () => {
    expect(compile('state:running')).toBe(compile('state:running'))
    expect(compile('state:running')).not.toBe(compile('state:stopped'))
  })

  it('keeps working after evicting from the cache', () => {
    const first = compile('name:a')
    for (let i = 0; i < 200; i++) compile(`name:x${i}`)
    const again = compile('name:a')
    expect(again).not.toBe(first)
    expect(selected('name:a', objs)).toEqual(['a'])
  })

  it('does not see prototype properties as fields', () => {
    // "constructor" is on every object's prototype; it is not a key of these objects
    expect(selected('constructor:x', objs)).toEqual([])
    expect(selected('name:constructor', objs)).toEqual(['proto'])
    expect(selected('tostring:x', objs)).toEqual(['proto'])
    expect(selected('hasownproperty:', objs)).toEqual([])
  })

  it('treats undefined like null (a present key with an empty value)', () => {
    expect(selected('state:', objs)).toEqual(['undef'])
  })

  it('formats NaN and infinities like String(x), case-insensitively', () => {
    expect(selected('value:nan', objs)).toEqual(['nan'])
    expect(selected('inf:Infinity', objs)).toEqual(['nan'])
    expect(selected('neg:-infinity', objs)).toEqual(['nan'])
  })

  it('walks nested keys ignoring ASCII case', () => {
    expect(selected('nested.deep.k:1', objs)).toEqual(['a'])
    expect(selected('NESTED.DEEP.K:1', objs)).toEqual(['a'])
    expect(selected('nested.deep:', objs)).toEqual([])
  })

  it('reports empty queries', () => {
    expect(isEmptyQuery('')).toBe(true)
    expect(isEmptyQuery(' \t\r\n\v\f')).toBe(true)
    expect(isEmptyQuery('\u00a0')).toBe(false)
    expect(isEmptyQuery('x')).toBe(false)
  })

  it('matches hostile globs in linear time', () => {
    const text = 'a'.repeat(20000)
    const obj = { id: 'x', name: text }
    const t0 = performance.now()
    expect(matches('name:*a*a*a*a*a*a*a*a*a*a*b', obj)).toBe(false)
    expect(matches(`${'*a'.repeat(30)}*`, obj)).toBe(true)
    // a backtracking regex would take minutes here; the linear scan takes well under a millisecond
    expect(performance.now() - t0).toBeLessThan(1000)
  })

  it('filters 10,000 rows quickly', () => {
    const rows: Record<string, unknown>[] = []
    for (let i = 0; i < 10000; i++) {
      rows.push({
        id: `src${i % 7}:grp${i % 13}:proc_${i}`,
        source: `src${i % 7}`,
        group: `grp${i % 13}`,
        name: `proc_${i}`,
        state: i % 5 === 0 ? 'FATAL' : 'RUNNING',
        pid: i,
        labels: { Arch: i % 2 ? 'x86_64' : 'arm64' },
      })
    }
    const query = 'state:running,starting -source:src1* labels.arch:x86* proc'
    const predicate = compile(query)
    let count = 0
    const t0 = performance.now()
    for (let round = 0; round < 10; round++) {
      count = 0
      for (const row of rows) if (predicate(row)) count++
    }
    const elapsed = performance.now() - t0
    expect(count).toBeGreaterThan(0)
    // 10 passes over 10,000 rows take ~30 ms once warm; the bound is loose for busy CI machines
    expect(elapsed).toBeLessThan(3000)
  })
})
