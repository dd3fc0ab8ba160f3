"""Running actions from the command line: resolve the targets, ask, run, report each.

Every target's result is printed as the hub answered it (``ID: ok`` or
``ID: failed: WHAT SUPERVISORD SAID``); the exit status is 1 when any failed or any
TARGET matched nothing. An action the model marks ``confirm`` that reaches more than
one source is asked about first, unless ``--yes``; with no terminal to ask on, it is
refused (exit 2).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from fleetwatch.cli import render
from fleetwatch.cli.common import Failure, hub_errors, write, write_json
from fleetwatch.cli.targets import Resolved, action_spec, resolve
from fleetwatch.client import HubClient

__all__ = ["parse_params", "run"]


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """``k=v`` pairs; a value that reads as a JSON number or boolean becomes one."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise Failure(f"--param {pair!r}: expected KEY=VALUE")
        params[key] = _value(value)
    return params


def _value(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        return text


def run(
    hub: HubClient,
    action: str,
    kind: str,
    words: Sequence[str],
    *,
    filter_q: str | None = None,
    params: Mapping[str, Any] | None = None,
    yes: bool = False,
    as_json: bool = False,
) -> int:
    """Run ``action`` on what ``words`` and ``filter_q`` name; the exit status."""
    if not words and not filter_q:
        raise Failure("no targets: name some, or use --filter FILTER")
    with hub_errors():
        sources = hub.rows("sources")
        processes = hub.rows("processes") if kind in ("process", "any") else []
        nodes = hub.rows("nodes") if kind in ("node", "any") else []
        filtered: list[tuple[str, str]] = []
        if filter_q:
            plurals = {"process": ("processes",), "node": ("nodes",), "source": ("sources",)}
            for plural in plurals.get(kind, ("processes", "nodes", "sources")):
                k = {"processes": "process", "nodes": "node", "sources": "source"}[plural]
                filtered += [(k, r["id"]) for r in hub.rows(plural, filter_q)]
    resolved = resolve(
        words, kind, action, sources=sources, processes=processes, nodes=nodes, filtered=filtered
    )
    if not resolved.targets and not resolved.unmatched:
        raise Failure(f"--filter {filter_q!r} selects nothing that can {action}", 1)
    by_source = {s["id"]: s for s in sources}
    _confirm(action, resolved, by_source, yes)
    results: list[dict[str, Any]] = []
    color = render.color_enabled()
    for word in resolved.unmatched:
        error = f"no target matches {word!r} (or it has no action {action!r})"
        results.append(
            {"target": {"kind": None, "id": word}, "ok": False, "error": error, "detail": None}
        )
        if not as_json:
            write([f"{word}: {render.paint('failed', 'red', color)}: {error}"])
    for k, id in resolved.targets:
        with hub_errors():
            answer = hub.action(k, id, action, params)
        results.append({"target": {"kind": k, "id": id}, **answer})
        if not as_json:
            write([_line(id, answer, color)])
    if as_json:
        write_json(results)
    return 0 if all(r["ok"] for r in results) else 1


def _line(id: str, answer: Mapping[str, Any], color: bool) -> str:
    detail = answer.get("detail")
    extra = f" {json.dumps(detail, ensure_ascii=False)}" if detail not in (None, {}, []) else ""
    if answer.get("ok"):
        return f"{id}: {render.paint('ok', 'green', color)}{extra}"
    error = answer.get("error") or "no reason given"
    return f"{id}: {render.paint('failed', 'red', color)}: {error}{extra}"


def _confirm(action: str, resolved: Resolved, sources: Mapping[str, Any], yes: bool) -> None:
    touched = sorted(resolved.sources())
    if yes or len(touched) < 2:
        return
    if not any((action_spec(sources.get(s), action) or {}).get("confirm") for s in touched):
        return
    n = len(resolved.targets)
    plural = "s" if n != 1 else ""
    what = f"{action} {n} target{plural} on {len(touched)} sources ({', '.join(touched)})"
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise Failure(f"{what}: say --yes (no terminal to ask on)")
    sys.stderr.write(f"{what}? [y/N] ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline().strip().lower()
    except KeyboardInterrupt:
        answer = ""
    if answer not in ("y", "yes"):
        raise Failure("nothing done", 1)
