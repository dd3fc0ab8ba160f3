"""Tests of the filter language: the shared vectors, parse results and the helpers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from fleetwatch import filters
from fleetwatch.filters import Filter, Pattern, Term, matches, parse

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "filters.json"
DATA: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
OBJECTS: dict[str, dict[str, Any]] = DATA["objects"]
CASES: list[dict[str, Any]] = DATA["cases"]


# -- the shared vectors ---------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[repr(case["query"]) for case in CASES])
def test_vector(case: dict[str, Any]) -> None:
    flt = parse(case["query"])
    got = [name for name, obj in OBJECTS.items() if flt.matches(obj)]
    assert got == case["matches"], case["note"]
    assert [name for name, obj in OBJECTS.items() if matches(case["query"], obj)] == got


def test_vectors_file_is_well_formed() -> None:
    assert len(CASES) >= 40
    queries = [case["query"] for case in CASES]
    assert len(queries) == len(set(queries)), "duplicate queries"
    names = list(OBJECTS)
    for case in CASES:
        assert set(case) == {"query", "matches", "note"}
        assert case["note"]
        assert case["matches"] == [name for name in names if name in case["matches"]], (
            f"{case['query']!r}: matches must be unique names in the order of 'objects'"
        )


# -- parse results --------------------------------------------------------------------------


def test_parse_empty() -> None:
    for query in ("", " ", "\t\n \r\f\v"):
        flt = parse(query)
        assert flt == Filter(())
        assert flt.is_empty
        assert not flt
    assert parse("x")
    assert not parse("x").is_empty


def test_parse_field_and_bare_words() -> None:
    assert parse("state:running,Starting group:web api").terms == (
        Term(("state",), (Pattern("running"), Pattern("starting"))),
        Term(("group",), (Pattern("web"),)),
        Term(None, (Pattern("api"),)),
    )


def test_parse_field_names_are_ascii_lowercased_and_dotted() -> None:
    assert parse("Labels.ARCH:x86*").terms == (Term(("labels", "arch"), (Pattern("x86*"),)),)
    # Only A-Z is lowercased in field names (É stays as it is).
    assert parse("TEMPÉRATURE:x").terms[0].field == ("tempÉrature",)
    assert parse("a..b.:x").terms[0].field == ("a", "", "b", "")


def test_parse_negation() -> None:
    assert parse("-state:running").terms == (Term(("state",), (Pattern("running"),), True),)
    assert parse("-").terms == (Term(None, (Pattern("-"),)),)
    assert parse("--").terms == (Term(None, (Pattern("-"),), True),)
    assert parse('"-api"').terms == (Term(None, (Pattern("-api"),)),)
    assert parse('-""').terms == (Term(None, (Pattern(""),), True),)


def test_parse_quotes() -> None:
    assert parse('name:"my app" x').terms == (
        Term(("name",), (Pattern("my app"),)),
        Term(None, (Pattern("x"),)),
    )
    assert parse('name:"my app x').terms == (Term(("name",), (Pattern("my app x"),)),)
    assert parse('name:my" "app').terms == (Term(("name",), (Pattern("my app"),)),)
    assert parse('"a:b"').terms == (Term(None, (Pattern("a:b"),)),)
    assert parse('"a":b').terms == (Term(None, (Pattern("a:b"),)),)
    assert parse('x:"a,b",c').terms == (Term(("x",), (Pattern("a,b"), Pattern("c"))),)
    assert parse('""').terms == (Term(None, (Pattern(""),)),)


def test_parse_colons() -> None:
    assert parse(":web:").terms == (Term(None, (Pattern(":web:"),)),)
    assert parse("url:http://h:1").terms == (Term(("url",), (Pattern("http://h:1"),)),)


def test_parse_alternatives() -> None:
    assert parse("state:running,,").terms == (Term(("state",), (Pattern("running"),)),)
    assert parse("state:").terms == (Term(("state",), (Pattern(""),)),)
    assert parse("state:,,").terms == (Term(("state",), (Pattern(""),)),)
    assert parse(",").terms == (Term(None, (Pattern(""),)),)


def test_pattern() -> None:
    assert Pattern("RuN*").text == "run*"
    assert Pattern("run*").is_glob
    assert not Pattern("run?[x]").is_glob
    assert Pattern("a**b") == Pattern("a**b")
    assert Pattern("a**b").parts == ("a", "b")
    assert Pattern("*").parts == ("", "")
    assert Pattern("run").equals("run")
    assert not Pattern("run").equals("running")
    assert Pattern("run").found_in("running")
    assert Pattern("*ing").found_in("running")
    assert not Pattern("ru*").equals("rxn")


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("*", "", True),
        ("*", "anything", True),
        ("a*", "a", True),
        ("*a", "a", True),
        ("a*a", "a", False),
        ("a*a", "aa", True),
        ("ab*ba", "aba", False),
        ("ab*ba", "abba", True),
        ("*ab*", "xxabyy", True),
        ("a*b*c", "abc", True),
        ("a*b*c", "acb", False),
        ("a*b*c", "a\nb\nc", True),
        ("a*bc*bc", "abcbc", True),
        ("a*bc*bc", "abcbcx", False),
        ("*?*", "a?b", True),
        ("*?*", "ab", False),
        ("[ab]*", "a", False),
        ("[ab]*", "[ab]c", True),
    ],
)
def test_glob(pattern: str, text: str, expected: bool) -> None:
    assert Pattern(pattern).equals(text) is expected


def test_parse_is_cached_and_frozen() -> None:
    assert parse("state:running") is parse("state:running")
    flt = parse("state:running")
    with pytest.raises(AttributeError):
        flt.terms = ()  # type: ignore[misc]
    assert hash(flt) == hash(parse("state:running"))


# -- values as text -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (-2.0, "-2"),
        (1.5, "1.5"),
        (0.1, "0.1"),
        (1 / 3, "0.3333333333333333"),
        (123.456, "123.456"),
        (1e-4, "0.0001"),
        (1e-6, "0.000001"),
        (1.5e-6, "0.0000015"),
        (1e-7, "1e-7"),
        (-1.25e-7, "-1.25e-7"),
        (5e-324, "5e-324"),
        (2.0**53, "9007199254740992"),
        (1e16, "10000000000000000"),
        (1.2345678901234568e20, "123456789012345680000"),
        (1e21, "1e+21"),
        (1.5e22, "1.5e+22"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (float("inf"), "infinity"),
        (float("-inf"), "-infinity"),
        (float("nan"), "nan"),
    ],
)
def test_float_text_is_javascripts(value: float, text: str) -> None:
    # Lowercased, since values are matched lowercased ("Infinity" -> "infinity").
    assert filters._texts(value) == (text,)


def test_texts_of_other_values() -> None:
    assert filters._texts(None) == ("",)
    assert filters._texts(True) == ("true",)
    assert filters._texts(False) == ("false",)
    assert filters._texts(-3) == ("-3",)
    assert filters._texts("MiXeD") == ("mixed",)
    assert filters._texts([]) == ("",)
    assert filters._texts({}) == ("",)
    assert filters._texts({"a": 1}) == ()
    assert filters._texts(["A", [2, None], (True,)]) == ("a", "2", "", "true")


def test_field_lookup_is_ascii_case_insensitive() -> None:
    obj = {"Name": "x", "labels": {"ARCH": "arm", "arch": "x86"}}
    assert matches("name:x", obj)
    assert matches("labels.arch:x86", obj), "the exactly lowercase key wins"
    assert matches("labels.Arch:x86", obj)
    assert not matches("labels.arch:arm", obj)
    assert matches("labels.arch:arm", {"labels": {"ARCH": "arm", "Arch": "x86"}}), "first key"
    # Unicode case mappings are not used for keys: the Kelvin sign is not "k".
    assert not matches("k:1", {"\u212a": 1})


# -- convenience and robustness -------------------------------------------------------------


def test_matches_convenience() -> None:
    obj = {"id": "sv1:web:api", "group": "web", "name": "api", "state": "RUNNING"}
    assert matches("", obj)
    assert matches("api", obj)
    assert matches("state:running,starting group:web", obj)
    assert not matches("-state:running", obj)
    assert not matches("nope", {})
    assert matches("-nope", {})


def test_hostile_globs_are_linear() -> None:
    # A backtracking regex (.*a.*a.*...b) would take minutes here.
    query = "description:" + "*a" * 30 + "*b"
    obj = {"description": "a" * 5000}
    start = time.perf_counter()
    assert not matches(query, obj)
    assert matches(query, {"description": "a" * 5000 + "b"})
    assert time.perf_counter() - start < 1.0


def test_every_string_is_a_query() -> None:
    obj = OBJECTS["proc_relay"]
    for query in ['"', '-"', "-", ":", "::", ",", "*", "**:**", '""""', "\x00", "-:-", "a.:."]:
        assert isinstance(parse(query).matches(obj), bool)
