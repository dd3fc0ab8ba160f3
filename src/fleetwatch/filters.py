"""The filter language: one small query grammar shared by the server, the CLI and the web app.

This docstring is the specification.  The Python implementation below and the TypeScript one
in the front end must agree on every query; the shared test vectors in
``tests/vectors/filters.json`` (objects, queries and the exact objects each query selects)
are read by both test suites.  Every string is a valid query: there are no syntax errors.

Examples::

    state:running,starting group:web     running or starting processes of group "web"
    -state:running source:lid*           everything not running, from sources named lid...
    api                                  "api" appears in the name, group or id
    name:"my app"                        quotes group a value that contains spaces
    labels.arch:x86* metrics.load:0      dotted fields look inside nested mappings

1. Words
   The query is cut into *words* at runs of whitespace, where whitespace is exactly the six
   ASCII characters space, tab, LF, VT, FF and CR (not NBSP or other Unicode spaces).  A
   double quote ``"`` switches quoting on and off anywhere in a word; while quoting is on,
   whitespace belongs to the word.  An unterminated quote runs to the end of the query.
   Quote characters are never part of a value; ``""`` is a word whose value is empty.
   As a regular expression, a word is ``(?:[^ \\t\\n\\v\\f\\r"]|"[^"]*"?)+``.
   All words must match (AND).  A query without words (empty, or only whitespace) matches
   every object.

2. Negation
   A word that starts with ``-`` and is longer than one character is *negated*: the ``-``
   is removed and the word matches exactly the objects the rest does not match.  Only one
   ``-`` is removed (``--x`` is the negation of the bare word ``-x``).  A lone ``-`` is a
   bare word whose value is ``-``.  A quoted dash does not negate (``"-x"`` is the bare
   word ``-x``).

3. Field words and bare words
   After negation, if the word contains a ``:`` that comes before any ``"``, and the text
   before that first ``:`` is not empty, the word is a *field word*: the text before the
   colon is the field, the text after it is the value.  Otherwise the whole word is a *bare
   word* and its value is the whole word (so ``:web:``, ``"a:b"`` and ``"name":x`` are bare
   words whose values contain colons).
   The field is lowercased in ASCII only (A-Z to a-z) and cut at every ``.`` into a path of
   keys (``labels.arch`` is ``labels`` then ``arch``; empty keys are kept as ``""``).

4. Alternatives (OR within a word)
   The value is cut at every ``,`` that is outside quotes into *alternatives* (after the
   quote characters are removed).  Empty alternatives are dropped; if none is left, the
   word has the single empty alternative ``""``.  So ``state:running,`` is
   ``state:running``, ``state:,`` is ``state:``, and ``state:"a,b"`` has one alternative
   ``a,b``.  The word matches when any alternative matches.

5. Field values as text
   A field is looked up key by key along its path, starting at the object.  Each key is
   compared with the mapping's keys in ASCII case-insensitive fashion: the key exactly
   equal to the lowercased field key wins, otherwise the first key (in the mapping's order)
   equal to it ignoring ASCII case.  A key that is absent, or a step into something that is
   not a mapping, makes the value *missing*.
   The value then becomes a list of texts:

   - missing or ``None`` (JSON ``null``): ``[""]``;
   - string: itself;
   - boolean: ``"true"`` or ``"false"``;
   - integer: its decimal digits (``-3``, ``42``);
   - float: ECMAScript ``Number.prototype.toString()`` (JavaScript's ``String(x)``):
     ``1.0`` -> ``"1"``, ``1.5`` -> ``"1.5"``, ``-0.0`` -> ``"0"``, ``1e-06`` ->
     ``"0.000001"``, ``1e-07`` -> ``"1e-7"``, ``1e20`` -> ``"100000000000000000000"``,
     ``1e21`` -> ``"1e+21"``, NaN -> ``"NaN"``, infinities -> ``"Infinity"``/``"-Infinity"``;
   - list: the texts of all its elements (recursively); an empty list is ``[""]``;
   - mapping: an empty mapping is ``[""]``; a non-empty mapping has no texts at all, so it
     never matches as a whole (``labels:x86_64`` matches nothing, ``-labels:x`` everything);
   - anything else (not possible in JSON): ``str(value)``.

   Missing, null, ``""``, ``[]`` and ``{}`` therefore all behave like the empty string:
   ``foo:x`` does not match an object without ``foo``, ``-foo:x`` does, and ``foo:`` (the
   empty value) matches exactly the objects whose ``foo`` is missing or empty.

6. Matching an alternative against a text
   Comparison is case-insensitive: both the alternative and the text are lowercased with
   Unicode default lowercasing (Python ``str.lower``, JavaScript ``toLowerCase``), with no
   normalization.  Then:

   - If the alternative contains ``*`` (quoted or not), it is a glob over the whole text:
     ``*`` matches any run of characters, including none and including newlines.  There
     are no other metacharacters: ``?``, ``[``, ``]`` and ``\\`` are literal.
   - Otherwise a field word's alternative must equal the text; a bare word's alternative
     must be a substring of the text (so the empty bare alternative matches anything).

7. What a word matches
   A field word matches an object when some alternative matches some text of the field's
   value.  A bare word matches when some alternative matches some text of the object's
   ``name``, ``group`` or ``id`` field (each looked up as in rule 5).
   But a field word whose field's *first* key is not a key of the object at all (rule 5's
   lookup finds nothing; a key whose value is null or empty *is* a key) is matched as a
   bare word whose alternatives are ``FIELD:ALT`` for each alternative ``ALT`` of its value
   (``FIELD:`` when it has only the empty one), ``FIELD`` as typed.  So ids,
   which contain colons, can be typed as they are: ``sv1:web`` finds ``sv1:web:api_00``,
   and ``sv2:`` everything of ``sv2`` (what Multivisor users type), while ``state:`` on a
   process still asks for an empty state.

Implementation notes: :func:`parse` and :func:`matches` share an LRU cache of parsed
queries; patterns are lowercased once, at parse time, and texts once per value.  Globs are
matched by a linear scan (prefix, suffix, then each middle piece found left to right)
instead of a backtracking regular expression, because a regex such as ``.*a.*a.*a.*b``
takes exponential time on hostile input and queries come from users.  A TypeScript port
should do the same.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import methodcaller
from typing import Any

__all__ = ["Filter", "Pattern", "Term", "matches", "parse"]

_WORD = re.compile(r'(?:[^ \t\n\v\f\r"]|"[^"]*"?)+')
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_MISSING: Any = object()
_EMPTY: tuple[str, ...] = ("",)


def _ascii_lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


def _glob_match(parts: tuple[str, ...], text: str) -> bool:
    """Whether ``text`` matches the glob whose ``*``-separated pieces are ``parts``."""
    first, last = parts[0], parts[-1]
    start, end = len(first), len(text) - len(last)
    if end < start or not text.startswith(first) or not text.endswith(last):
        return False
    for part in parts[1:-1]:
        if part:
            found = text.find(part, start, end)
            if found < 0:
                return False
            start = found + len(part)
    return True


@dataclass(frozen=True, slots=True)
class Pattern:
    """One alternative of a word: lowercased text, a glob when it contains ``*``."""

    text: str
    parts: tuple[str, ...] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        text = self.text.lower()
        object.__setattr__(self, "text", text)
        parts = tuple(re.sub(r"\*+", "*", text).split("*")) if "*" in text else ()
        object.__setattr__(self, "parts", parts)

    @property
    def is_glob(self) -> bool:
        return bool(self.parts)

    def equals(self, text: str) -> bool:
        """Field-word rule: glob over the whole (lowercased) text, else equality."""
        if self.parts:
            return _glob_match(self.parts, text)
        return text == self.text

    def found_in(self, text: str) -> bool:
        """Bare-word rule: glob over the whole (lowercased) text, else substring."""
        if self.parts:
            return _glob_match(self.parts, text)
        return self.text in text


@dataclass(frozen=True, slots=True)
class Term:
    """One word of a query.  ``field`` is the lowercased key path, or None for a bare word."""

    field: tuple[str, ...] | None
    patterns: tuple[Pattern, ...]
    negated: bool = False
    whole: Term | None = dataclasses.field(default=None, compare=False, repr=False)
    """For a field word, the whole word as a bare word (rule 7, objects without the field)."""
    _test: Callable[[str], bool] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_test", _text_test(self.field is None, self.patterns))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """Whether ``obj`` satisfies this word (negation included)."""
        path = self.field
        if path is None:
            hit = (
                self._hit(_get(obj, "name"))
                or self._hit(_get(obj, "group"))
                or self._hit(_get(obj, "id"))
            )
        else:
            value = _get(obj, path[0], _MISSING)
            if value is _MISSING and self.whole is not None:
                hit = self.whole.matches(obj)
            elif len(path) == 1:
                hit = self._hit(value)
            else:
                hit = self._hit(_lookup(value, path[1:]))
        return hit != self.negated

    def _hit(self, value: Any) -> bool:
        if type(value) is str:  # the common case, without building a tuple
            return self._test(value.lower())
        test = self._test
        return any(test(text) for text in _texts(value))


def _text_test(bare: bool, patterns: tuple[Pattern, ...]) -> Callable[[str], bool]:
    """One fast function telling whether a lowercased text matches any of ``patterns``.

    Semantically ``any(p.found_in(text) if bare else p.equals(text) for p in patterns)``.
    """
    tests = [_glob_test(pattern.parts) for pattern in patterns if pattern.is_glob]
    plain = [pattern.text for pattern in patterns if not pattern.is_glob]
    if plain and bare:
        tests.extend(methodcaller("__contains__", text) for text in plain)
    elif plain:
        tests.append(frozenset(plain).__contains__)
    if len(tests) == 1:
        return tests[0]
    return lambda text: any(test(text) for test in tests)


def _glob_test(parts: tuple[str, ...]) -> Callable[[str], bool]:
    """``functools.partial(_glob_match, parts)``, with C-speed shortcuts for common shapes."""
    first, last = parts[0], parts[-1]
    if len(parts) == 2:
        if not first and not last:
            return lambda text: True
        if not last:
            return methodcaller("startswith", first)
        if not first:
            return methodcaller("endswith", last)
    if len(parts) == 3 and not first and not last:
        return methodcaller("__contains__", parts[1])
    return functools.partial(_glob_match, parts)


@dataclass(frozen=True, slots=True)
class Filter:
    """A parsed query: the AND of its terms.  Falsy when it matches everything."""

    terms: tuple[Term, ...] = ()

    @property
    def is_empty(self) -> bool:
        """True when the query had no words, so the filter matches every object."""
        return not self.terms

    def __bool__(self) -> bool:
        return bool(self.terms)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """Whether ``obj`` satisfies every word of the query."""
        for term in self.terms:  # noqa: SIM110 (a plain loop is faster than all())
            if not term.matches(obj):
                return False
        return True


def _get(mapping: Mapping[Any, Any], key: str, absent: Any = None) -> Any:
    """``mapping[key]`` with ``key`` matched ignoring ASCII case (rule 5); ``absent`` if absent."""
    value = mapping.get(key, _MISSING)
    if value is not _MISSING:
        return value
    # A quick test, in C, of a necessary condition for the scan below to find a key:
    # if _ascii_lower(candidate) == key then candidate.lower() == key.lower().
    try:
        if key.lower() not in map(str.lower, mapping):
            return absent
    except TypeError:  # a key that is not a str
        pass
    size = len(key)
    for candidate in mapping:
        if isinstance(candidate, str) and len(candidate) == size and _ascii_lower(candidate) == key:
            return mapping[candidate]
    return absent


def _lookup(obj: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` inside ``obj`` (rule 5); None if missing."""
    value: Any = obj
    for key in path:
        if type(value) is not dict and not isinstance(value, Mapping):
            return None
        value = _get(value, key)
    return value


def _number_text(x: float) -> str:
    """ECMAScript Number::toString(x), lowercased (Python's repr gives the same digits)."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "infinity" if x > 0 else "-infinity"
    if x == 0:
        return "0"
    text = repr(x)
    if "e" not in text:
        return text.removesuffix(".0")
    sign = "-" if x < 0 else ""
    mantissa, _, exponent = text.lstrip("-").partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).rstrip("0")
    k = len(digits)
    n = int(exponent) + len(whole)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    e = n - 1
    exp = ("e+" if e >= 0 else "e-") + str(abs(e))
    return sign + digits[0] + ("." + digits[1:] if k > 1 else "") + exp


def _texts(value: Any) -> tuple[str, ...]:
    """The lowercased texts a field value is matched against (rule 5)."""
    if value is None:
        return _EMPTY
    if isinstance(value, str):
        return (value.lower(),)
    if isinstance(value, bool):
        return ("true" if value else "false",)
    if isinstance(value, int):
        return (int.__repr__(value),)
    if isinstance(value, float):
        return (_number_text(value),)
    if isinstance(value, Mapping):
        return () if value else _EMPTY
    if isinstance(value, list | tuple):
        if not value:
            return _EMPTY
        return tuple(text for item in value for text in _texts(item))
    return (str(value).lower(),)


def _alternatives(value: str) -> tuple[Pattern, ...]:
    return tuple(Pattern(text) for text in _alternative_texts(value))


def _alternative_texts(value: str) -> tuple[str, ...]:
    alternatives: list[str] = []
    current: list[str] = []
    quoted = False
    for char in value:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            alternatives.append("".join(current))
            current = []
        else:
            current.append(char)
    alternatives.append("".join(current))
    return tuple(text for text in alternatives if text) or ("",)


def _term(word: str) -> Term:
    negated = len(word) > 1 and word[0] == "-"
    if negated:
        word = word[1:]
    colon = word.find(":")
    quote = word.find('"')
    if colon > 0 and (quote < 0 or colon < quote):
        path = tuple(_ascii_lower(word[:colon]).split("."))
        prefix = word[: colon + 1]
        whole = Term(
            None, tuple(Pattern(prefix + alt) for alt in _alternative_texts(word[colon + 1 :]))
        )
        return Term(path, _alternatives(word[colon + 1 :]), negated, whole)
    return Term(None, _alternatives(word), negated)


@functools.lru_cache(maxsize=1024)
def _parse_cached(query: str) -> Filter:
    return Filter(tuple(_term(word) for word in _WORD.findall(query)))


def parse(query: str) -> Filter:
    """Parse ``query`` (never fails: every string is a query).  Results are cached."""
    return _parse_cached(query)


def matches(query: str, obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` matches ``query``."""
    return _parse_cached(query).matches(obj)
