/**
 * The filter language, a faithful twin of `src/fleetwatch/filters.py` (whose module docstring
 * is the specification). Both implementations read the shared vectors in
 * `tests/vectors/filters.json`.
 *
 * Summary (see the docstring for the exact rules):
 * - words are cut at ASCII whitespace (space, TAB, LF, VT, FF, CR) outside double quotes;
 *   all words must match; no words matches everything;
 * - `-word` negates (one `-` only; a lone `-` and `"-x"` are bare words);
 * - `field:value` (a `:` before any `"`, non-empty field) is a field word, with a dotted,
 *   ASCII-case-insensitive key path; anything else is a bare word searching name/group/id;
 * - `a,b` are alternatives (empty ones dropped); `*` globs the whole text; otherwise a field
 *   alternative must equal the text and a bare one must be a substring of it;
 * - a field word whose first key the object lacks is matched as the bare word `FIELD:ALT`.
 *
 * Each word is compiled once into a closure; globs are matched by a linear scan, never by a
 * regular expression built from user input (no catastrophic backtracking).
 */

export type Predicate = (obj: Record<string, unknown>) => boolean

type TextTest = (text: string) => boolean

const WORD = /(?:[^ \t\n\v\f\r"]|"[^"]*"?)+/g
const EMPTY: readonly string[] = ['']
const hasOwn = Object.prototype.hasOwnProperty

/** A-Z to a-z only (rule 3: field names). */
function asciiLower(text: string): string {
  return text.replace(/[A-Z]+/g, (m) => m.toLowerCase())
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Sentinel for "the key is absent" (distinct from null/undefined values). */
const MISSING: unique symbol = Symbol('missing')

/**
 * `mapping[key]`, with `key` (already ASCII-lowercased) matched ignoring ASCII case: the exact
 * key wins, otherwise the first key in the mapping's order equal to it ignoring ASCII case.
 */
function getKey(mapping: Record<string, unknown>, key: string): unknown {
  if (hasOwn.call(mapping, key)) return mapping[key]
  const size = key.length
  for (const candidate in mapping) {
    if (candidate.length === size && hasOwn.call(mapping, candidate) && asciiLowerEquals(candidate, key)) {
      return mapping[candidate]
    }
  }
  return MISSING
}

/** Whether `candidate`, lowercased in ASCII only, equals `key` (same length), without allocating. */
function asciiLowerEquals(candidate: string, key: string): boolean {
  for (let i = 0; i < key.length; i++) {
    let c = candidate.charCodeAt(i)
    if (c >= 65 && c <= 90) c += 32
    if (c !== key.charCodeAt(i)) return false
  }
  return true
}

/** The value at `path` inside `value` (rule 5); undefined when missing. */
function lookup(value: unknown, path: readonly string[]): unknown {
  let current: unknown = value
  for (const key of path) {
    if (!isMapping(current)) return undefined
    current = getKey(current, key)
    if (current === MISSING) return undefined
  }
  return current
}

/** The lowercased texts a field value is matched against (rule 5). */
function texts(value: unknown): readonly string[] {
  if (value === null || value === undefined || value === MISSING) return EMPTY
  switch (typeof value) {
    case 'string':
      return [value.toLowerCase()]
    case 'boolean':
      return [value ? 'true' : 'false']
    case 'number':
      // ECMAScript Number::toString, lowercased ("NaN" -> "nan", "Infinity" -> "infinity").
      return [String(value).toLowerCase()]
    case 'bigint':
      return [value.toString()]
    default:
      break
  }
  if (Array.isArray(value)) {
    if (value.length === 0) return EMPTY
    const out: string[] = []
    for (const item of value) {
      for (const text of texts(item)) out.push(text)
    }
    return out
  }
  if (isMapping(value)) {
    for (const _ in value) {
      if (hasOwn.call(value, _)) return []
    }
    return EMPTY
  }
  return [String(value).toLowerCase()]
}

/** Whether `text` matches the glob whose `*`-separated pieces are `parts` (≥ 2 pieces). */
function globMatch(parts: readonly string[], text: string): boolean {
  const first = parts[0]
  const last = parts[parts.length - 1]
  let start = first.length
  const end = text.length - last.length
  if (end < start || !text.startsWith(first) || !text.endsWith(last)) return false
  for (let i = 1; i < parts.length - 1; i++) {
    const part = parts[i]
    if (!part) continue
    const found = text.indexOf(part, start)
    if (found < 0 || found + part.length > end) return false
    start = found + part.length
  }
  return true
}

function globTest(pattern: string): TextTest {
  const parts = pattern.replace(/\*+/g, '*').split('*')
  const first = parts[0]
  const last = parts[parts.length - 1]
  if (parts.length === 2) {
    if (!first && !last) return () => true
    if (!last) return (text) => text.startsWith(first)
    if (!first) return (text) => text.endsWith(last)
  }
  if (parts.length === 3 && !first && !last) {
    const middle = parts[1]
    return (text) => text.includes(middle)
  }
  return (text) => globMatch(parts, text)
}

/** One function telling whether a lowercased text matches any of the (raw) alternatives. */
function textTest(bare: boolean, alternatives: readonly string[]): TextTest {
  const tests: TextTest[] = []
  const plain: string[] = []
  for (const alternative of alternatives) {
    const pattern = alternative.toLowerCase()
    if (pattern.includes('*')) tests.push(globTest(pattern))
    else plain.push(pattern)
  }
  if (plain.length && bare) {
    for (const p of plain) tests.push((text) => text.includes(p))
  } else if (plain.length === 1) {
    const only = plain[0]
    tests.push((text) => text === only)
  } else if (plain.length) {
    const set = new Set(plain)
    tests.push((text) => set.has(text))
  }
  if (tests.length === 1) return tests[0]
  return (text) => {
    for (const test of tests) if (test(text)) return true
    return false
  }
}

function hitFor(test: TextTest): (value: unknown) => boolean {
  return (value) => {
    if (typeof value === 'string') return test(value.toLowerCase())
    for (const text of texts(value)) if (test(text)) return true
    return false
  }
}

/** Rule 4: alternatives of a value (quotes removed, commas outside quotes split). */
function alternativeTexts(value: string): string[] {
  const alternatives: string[] = []
  let current = ''
  let quoted = false
  for (let i = 0; i < value.length; i++) {
    const char = value[i]
    if (char === '"') quoted = !quoted
    else if (char === ',' && !quoted) {
      alternatives.push(current)
      current = ''
    } else current += char
  }
  alternatives.push(current)
  const kept = alternatives.filter((text) => text !== '')
  return kept.length ? kept : ['']
}

/** A bare word's (un-negated) test over name, group and id. */
function bareMatcher(alternatives: readonly string[]): Predicate {
  const hit = hitFor(textTest(true, alternatives))
  return (obj) => {
    const name = getKey(obj, 'name')
    if (hit(name)) return true
    const group = getKey(obj, 'group')
    if (hit(group)) return true
    return hit(getKey(obj, 'id'))
  }
}

/** One word of a query, compiled (negation included). */
function compileWord(word: string): Predicate {
  const negated = word.length > 1 && word[0] === '-'
  if (negated) word = word.slice(1)
  const colon = word.indexOf(':')
  const quote = word.indexOf('"')
  let positive: Predicate
  if (colon > 0 && (quote < 0 || colon < quote)) {
    const path = asciiLower(word.slice(0, colon)).split('.')
    const prefix = word.slice(0, colon + 1)
    const value = word.slice(colon + 1)
    const alternatives = alternativeTexts(value)
    const whole = bareMatcher(alternatives.map((alt) => prefix + alt))
    const hit = hitFor(textTest(false, alternatives))
    const head = path[0]
    const rest = path.slice(1)
    if (rest.length === 0) {
      positive = (obj) => {
        const value = getKey(obj, head)
        return value === MISSING ? whole(obj) : hit(value)
      }
    } else {
      positive = (obj) => {
        const value = getKey(obj, head)
        return value === MISSING ? whole(obj) : hit(lookup(value, rest))
      }
    }
  } else {
    positive = bareMatcher(alternativeTexts(word))
  }
  return negated ? (obj) => !positive(obj) : positive
}

const ALL: Predicate = () => true

function build(query: string): Predicate {
  const words = query.match(WORD)
  if (!words || words.length === 0) return ALL
  const terms = words.map(compileWord)
  if (terms.length === 1) return terms[0]
  return (obj) => {
    for (const term of terms) if (!term(obj)) return false
    return true
  }
}

const CACHE_SIZE = 64
const cache = new Map<string, Predicate>()

/** The predicate of `query` (never fails: every string is a query). Recent ones are cached. */
export function compile(query: string): Predicate {
  let predicate = cache.get(query)
  if (predicate !== undefined) {
    // Refresh its position: the Map's insertion order is the LRU order.
    cache.delete(query)
    cache.set(query, predicate)
    return predicate
  }
  predicate = build(query)
  cache.set(query, predicate)
  if (cache.size > CACHE_SIZE) {
    const oldest = cache.keys().next().value
    if (oldest !== undefined) cache.delete(oldest)
  }
  return predicate
}

/** Whether `obj` matches `query`. */
export function matches(query: string, obj: Record<string, unknown>): boolean {
  return compile(query)(obj)
}

/** True when `query` has no words (so it matches every object). */
export function isEmptyQuery(query: string): boolean {
  return compile(query) === ALL
}
