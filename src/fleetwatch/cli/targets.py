"""The action verbs of the command line, as data, and how their TARGETs are resolved.

Standard library only (the CLI's start-up time counts): no Typer, no model classes.

A :class:`Verb` names a command (``clear-log``), the model action it runs
(``clear_log``, one of a source's ``actions``) and what its TARGETs name (``process``,
``source`` or ``node``). Commands for a new kind of source (piwheels: ``pause``,
``resume``, ``kill`` a slave...) are new rows of :data:`VERBS`; ``fleetwatch do``
runs any action a source lists, table or not.

Resolution (:func:`resolve`), given the fleet's rows as the API sends them:

* an exact id is that entity: a source id (``sv1``: every process of it), a group id
  (``sv1:web``), a process id (``sv1:web:web``), a node id (``build/host1``);
* otherwise the TARGET is a glob (fnmatch: ``*``, ``?``, ``[...]``) over ids, as in
  Multivisor: ``sv1:web:*``; a process pattern with no ``:`` and no ``*`` becomes
  ``*:PATTERN`` (``sleeper`` is the program ``sleeper`` on every supervisor); a node
  pattern with no ``/`` also matches node names on every source (``host1``);
* ``--filter FILTER`` adds every entity of the verb's kind the filter language selects.

Only entities whose source lists the action for that kind of target are kept, so
``block`` never reaches a supervisord and ``update`` never an icecream scheduler.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "VERBS",
    "Resolved",
    "Verb",
    "action_spec",
    "resolve",
    "verb",
]

Row = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Verb:
    """One action command of the CLI (a row of the verb table)."""

    command: str
    """The command's name: ``fleetwatch COMMAND``."""
    action: str
    """The model action it runs (``ActionSpec.name``)."""
    kind: str
    """What its TARGETs name: ``process`` (also groups, sources), ``source`` or ``node``."""
    help: str
    params: tuple[str, ...] = ()
    """Positional parameters before the targets (``signal SIG TARGET...``)."""
    metavar: str = "TARGET"


VERBS: tuple[Verb, ...] = (
    Verb("start", "start", "process", "Start processes."),
    Verb("stop", "stop", "process", "Stop processes."),
    Verb("restart", "restart", "process", "Restart processes (stop, then start)."),
    Verb(
        "signal", "signal", "process", "Send a signal (HUP, TERM, ...) to processes.", ("signal",)
    ),
    Verb("clear-log", "clear_log", "process", "Clear processes' logs."),
    Verb("update", "update", "source", "Reread the config and apply it.", metavar="SOURCE"),
    Verb(
        "reread", "reread", "source", "Reread the config (changes not applied).", metavar="SOURCE"
    ),
    Verb("reload", "reload", "source", "Restart supervisord.", metavar="SOURCE"),
    Verb("shutdown", "shutdown", "source", "Shut supervisord down.", metavar="SOURCE"),
    Verb("block", "block", "node", "Block an icecream host from compiling.", metavar="HOST"),
    Verb("unblock", "unblock", "node", "Unblock an icecream host.", metavar="HOST"),
    Verb("remove", "remove", "node", "Remove an icecream host from its scheduler.", metavar="HOST"),
)

_BY_COMMAND = {v.command: v for v in VERBS}


def verb(command: str) -> Verb:
    return _BY_COMMAND[command]


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a command line's TARGETs came to."""

    targets: list[tuple[str, str]] = field(default_factory=list)
    """``(kind, id)`` pairs in order, each once; ``kind`` is a model kind or ``group``."""
    unmatched: list[str] = field(default_factory=list)
    """TARGETs that matched nothing that has the action."""

    def sources(self) -> set[str]:
        return {_source_of(kind, id) for kind, id in self.targets}


def action_spec(source: Row | None, action: str) -> Mapping[str, Any] | None:
    """The source's ActionSpec (as JSON) named ``action``, if it has one."""
    if source is None:
        return None
    for spec in source.get("actions") or ():
        if spec.get("name") == action:
            return spec  # type: ignore[no-any-return]
    return None


def _can(sources: Mapping[str, Row], action: str, kind: str, id: str) -> bool:
    spec = action_spec(sources.get(_source_of(kind, id)), action)
    return spec is not None and kind in (spec.get("targets") or ())


def _source_of(kind: str, id: str) -> str:
    if kind == "source":
        return id
    if kind == "node":
        return id.split("/", 1)[0]
    if kind == "job":
        return id.split("#", 1)[0]
    return id.split(":", 1)[0]


def resolve(
    words: Sequence[str],
    kind: str,
    action: str,
    *,
    sources: Iterable[Row],
    processes: Iterable[Row] = (),
    nodes: Iterable[Row] = (),
    filtered: Iterable[tuple[str, str]] = (),
) -> Resolved:
    """Resolve TARGET words (and the ``(kind, id)``s a ``--filter`` selected) for ``action``.

    ``kind`` is the verb's: ``process`` (which also takes source and group ids),
    ``source``, ``node``, or ``any`` (``fleetwatch do``: any kind the action takes).
    """
    by_source = {s["id"]: s for s in sources}
    procs = list(processes)
    node_rows = list(nodes)
    groups = {f"{p['source']}:{p['group']}" for p in procs}
    out: dict[tuple[str, str], None] = {}
    unmatched: list[str] = []

    def take(k: str, id: str) -> bool:
        if _can(by_source, action, k, id):
            out[(k, id)] = None
            return True
        return False

    process_kinds = kind in ("process", "any")
    for word in words:
        hit = False
        # Exact ids first: the most specific kind wins.
        if process_kinds and any(p["id"] == word for p in procs):
            hit = take("process", word)
        elif process_kinds and word in groups:
            hit = take("group", word)
        elif kind in ("node", "any") and any(n["id"] == word for n in node_rows):
            hit = take("node", word)
        elif word in by_source and kind in ("process", "source", "any"):
            hit = take("source", word)
        else:
            if process_kinds:
                pattern = word if (":" in word or "*" in word) else f"*:{word}"
                for p in procs:
                    if fnmatch.fnmatchcase(p["id"], pattern):
                        hit = take("process", p["id"]) or hit
            if kind in ("node", "any"):
                for n in node_rows:
                    name_hit = "/" not in word and fnmatch.fnmatchcase(n.get("name", ""), word)
                    if name_hit or fnmatch.fnmatchcase(n["id"], word):
                        hit = take("node", n["id"]) or hit
            if kind in ("source", "any"):
                for sid in by_source:
                    if fnmatch.fnmatchcase(sid, word):
                        hit = take("source", sid) or hit
        if not hit:
            unmatched.append(word)
    for k, id in filtered:
        take(k, id)
    return Resolved(list(out), unmatched)
