"""Completion for ``fleetwatch shell``: command names, options and live ids.

Nothing here knows the commands: :class:`ShellCompleter` walks the Typer app's click
command (names, options, arguments, as they are when the shell starts), and an argument
is completed from the hub's live model by what its metavar or name says it takes:

=========================================  ================================================
metavar (else name) contains               completed with
=========================================  ================================================
``target``, ``process``, ``pattern``,      process ids, group ids (``sv1:web``), globs
``program``                                (``sv1:*``, ``sv1:web:*``), bare program names
``source``, ``supervisor``                 source ids (``update SOURCE...``)
``host``, ``node``                         node names and ids
``filter``, ``query``                      filter words (``state:``, ``source:``, ...)
``sig``                                    signal names
anything else                              what the parameter itself offers (choices, its
                                           own completion callback)
=========================================  ================================================

The live model is read through :class:`Live`, a copy taken of a
:class:`~fleetwatch.client.mirror.Mirror` (``Live.of(mirror)``) in the mirror's own
thread, so completion never iterates dicts another thread is changing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

if TYPE_CHECKING:
    from fleetwatch.client.mirror import Mirror

__all__ = [
    "BUILTINS",
    "HIDDEN",
    "Live",
    "ShellCompleter",
    "is_group",
    "split_partial",
]

#: Commands the shell does not offer (they run servers or take over the terminal).
HIDDEN = frozenset({"serve", "demo", "shell", "tui", "piw-monitor"})
#: The shell's own words.
BUILTINS = {"help": "list the commands, or show one's help", "exit": "leave", "quit": "leave"}
#: supervisord's states, in the order the toolbar shows them.
STATES = ("RUNNING", "STARTING", "BACKOFF", "STOPPING", "STOPPED", "EXITED", "FATAL", "UNKNOWN")
SIGNALS = ("TERM", "HUP", "INT", "QUIT", "KILL", "USR1", "USR2", "STOP", "CONT")
FILTER_FIELDS = ("state", "source", "group", "name", "kind", "id")

_KINDS = (
    (("target", "process", "pattern", "program"), "process"),
    (("source", "supervisor"), "source"),
    (("host", "node"), "node"),
    (("filter", "query"), "filter"),
    (("sig",), "signal"),
)


@dataclass(frozen=True, slots=True)
class Live:
    """What completion and the toolbar need of the live model, copied at one instant."""

    name: str = ""
    status: str = "connecting"
    status_text: str = "Waiting for connection"
    processes: tuple[tuple[str, str, str, str, str], ...] = ()
    """(id, source, group, name, state) of every process."""
    sources: tuple[tuple[str, str], ...] = ()
    """(id, status) of every source."""
    nodes: tuple[tuple[str, str, str], ...] = ()
    """(id, name, state) of every node."""
    last_note: dict[str, Any] | None = None
    state_counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, mirror: Mirror) -> Live:
        """A copy of ``mirror`` (call it where the mirror's loop runs)."""
        processes = tuple(
            (
                str(p.get("id", "")),
                str(p.get("source", "")),
                str(p.get("group", "")),
                str(p.get("name", "")),
                str(p.get("state", "UNKNOWN")),
            )
            for p in mirror.entities["process"].values()
        )
        return cls(
            name=mirror.name,
            status=mirror.status,
            status_text=mirror.status_text,
            processes=processes,
            sources=tuple(
                (str(s.get("id", "")), str(s.get("status", "")))
                for s in mirror.entities["source"].values()
            ),
            nodes=tuple(
                (str(n.get("id", "")), str(n.get("name", "")), str(n.get("state", "")))
                for n in mirror.entities["node"].values()
            ),
            last_note=dict(mirror.notes[-1]) if mirror.notes else None,
            state_counts=dict(Counter(p[4] for p in processes)),
        )

    # -- candidates by kind ----------------------------------------------------------

    def process_words(self) -> list[str]:
        """Globs per source and per group, then every id, then bare program names."""
        sources = sorted({p[1] for p in self.processes})
        groups = sorted({(p[1], p[2]) for p in self.processes})
        words = [f"{s}:*" for s in sources]
        words += [f"{s}:{g}" for s, g in groups]
        words += [f"{s}:{g}:*" for s, g in groups]
        words += sorted(p[0] for p in self.processes)
        words += sorted({p[3] for p in self.processes})
        return words

    def source_words(self) -> list[str]:
        return sorted(s[0] for s in self.sources)

    def node_words(self) -> list[str]:
        return sorted({n[1] for n in self.nodes if n[1]}) + sorted(n[0] for n in self.nodes)

    def filter_words(self, word: str) -> list[str]:
        """Filter words: ``field:`` first, then the field's live values, then bare names."""
        negate = "-" if word.startswith("-") else ""
        body = word[len(negate) :]
        if ":" not in body:
            words = [f"{f}:" for f in FILTER_FIELDS]
            words += sorted({p[3] for p in self.processes})
            return [negate + w for w in words]
        name, _, _ = body.partition(":")
        values: Iterable[str] = {
            "state": [s.lower() for s in STATES],
            "source": self.source_words(),
            "group": sorted({p[2] for p in self.processes}),
            "name": sorted({p[3] for p in self.processes} | {n[1] for n in self.nodes}),
            "kind": ["source", "node", "process", "job"],
            "id": sorted(p[0] for p in self.processes),
        }.get(name.lower(), [])
        return [f"{negate}{name}:{v}" for v in values]


def split_partial(text: str) -> tuple[list[str], str, str]:
    """The words of a line being typed: ``(finished words, current word, its raw text)``.

    Quotes work as in :func:`shlex.split` (an open quote is allowed: the line is not
    finished); the current word's raw text is what a completion replaces.
    """
    words: list[str] = []
    word: list[str] = []
    raw_start = 0
    started = False
    quote = ""
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
            elif c == "\\" and quote == '"' and i + 1 < len(text) and text[i + 1] in '"\\':
                i += 1
                word.append(text[i])
            else:
                word.append(c)
        elif c in "'\"":
            quote = c
            started = True
        elif c == "\\" and i + 1 < len(text):
            i += 1
            word.append(text[i])
            started = True
        elif c.isspace():
            if started:
                words.append("".join(word))
            word, started = [], False
            raw_start = i + 1
        else:
            word.append(c)
            started = True
        i += 1
    return words, "".join(word), text[raw_start:]


def _quoted(text: str) -> str:
    if text and not any(c.isspace() or c in "'\"\\" for c in text):
        return text
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _kind(param: Any) -> str | None:
    """What a parameter takes, by its metavar (``HOST...``) first, else by its name."""
    for text in (getattr(param, "metavar", None), getattr(param, "name", None)):
        text = (text or "").lower()
        for keys, kind in _KINDS:
            if any(k in text for k in keys):
                return kind
    return None


def _takes_value(option: Any) -> bool:
    return not (getattr(option, "is_flag", False) or getattr(option, "count", False))


class ShellCompleter(Completer):
    """Completes a shell line (see the module docstring).

    ``root`` is the click command of the Typer app (``typer.main.get_command(app)``),
    ``live`` returns the current :class:`Live` copy.
    """

    def __init__(
        self, root: Any, live: Callable[[], Live], aliases: dict[str, str] | None = None
    ) -> None:
        import typer

        self.root = root
        self.live = live
        self.aliases = dict(aliases or {})
        self.ctx = typer.Context(root, info_name="fleetwatch")
        self.commands: dict[str, Any] = {}
        for name in root.list_commands(self.ctx):
            cmd = root.get_command(self.ctx, name)
            if cmd is not None and name not in HIDDEN and not getattr(cmd, "hidden", False):
                self.commands[name] = cmd

    def command(self, name: str) -> Any:
        """The click command a shell word names (aliases resolved), or None."""
        return self.commands.get(self.aliases.get(name, name))

    def help_lines(self) -> list[tuple[str, str]]:
        """(name, one-line help) of every command and builtin, for ``help``."""
        rows = [(n, c.get_short_help_str(70)) for n, c in sorted(self.commands.items())]
        rows += [(a, f"same as {t}") for a, t in sorted(self.aliases.items()) if t in self.commands]
        return rows + sorted(BUILTINS.items())

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterator[Completion]:
        words, current, raw = split_partial(document.text_before_cursor)
        for text, meta in self.candidates(words, current):
            yield Completion(_quoted(text), start_position=-len(raw), display_meta=meta)

    def candidates(self, words: list[str], current: str) -> Iterator[tuple[str, str]]:
        """(completion, description) pairs for ``current`` after ``words``."""
        if not words:
            names = dict(self.help_lines())
            for name in sorted(names):
                if name.startswith(current):
                    yield name, names[name]
            return
        if words[0] == "help":
            if len(words) == 1:
                for name in sorted(self.commands) + sorted(self.aliases):
                    if name.startswith(current):
                        yield name, ""
            return
        cmd = self.command(words[0])
        if cmd is None:
            return
        yield from self._params(cmd, words[1:], current)

    def _params(self, cmd: Any, words: list[str], current: str) -> Iterator[tuple[str, str]]:
        if is_group(cmd):  # a Typer sub-app: its commands, then theirs
            if words and not words[0].startswith("-"):
                sub = cmd.get_command(self.ctx, words[0])
                if sub is not None:
                    yield from self._params(sub, words[1:], current)
                return
            if not words and not current.startswith("-"):
                for name in cmd.list_commands(self.ctx):
                    sub = cmd.get_command(self.ctx, name)
                    if name.startswith(current) and sub is not None and not sub.hidden:
                        yield name, sub.get_short_help_str(70)
                return
        options: dict[str, Any] = {}
        arguments: list[Any] = []
        for p in cmd.params:
            if getattr(p, "param_type_name", "") == "argument":
                arguments.append(p)
            elif not getattr(p, "hidden", False):
                for opt in [*p.opts, *p.secondary_opts]:
                    options[opt] = p
        pending: Any = None  # the option whose value comes next
        left = 0
        positional = 0
        used: set[str] = set()
        dashdash = False
        for word in words:
            if pending is not None:
                left -= 1
                if left <= 0:
                    pending = None
                continue
            if not dashdash and word == "--":
                dashdash = True
            elif not dashdash and word.startswith("-") and len(word) > 1:
                opt = word.split("=", 1)[0]
                used.add(opt)
                p = options.get(opt)
                if p is not None and opt == word and _takes_value(p):
                    pending, left = p, max(1, p.nargs)
            else:
                positional += 1
        if pending is not None:
            yield from self._values(pending, current)
            return
        if not dashdash and current.startswith("--") and "=" in current:
            opt, _, value = current.partition("=")
            p = options.get(opt)
            if p is not None and _takes_value(p):
                for text, meta in self._values(p, value):
                    yield f"{opt}={text}", meta
            return
        if not dashdash and current.startswith("-"):
            for opt in sorted({*options, "--help"}):
                p = options.get(opt)
                repeatable = p is not None and (p.multiple or getattr(p, "count", False))
                if opt.startswith(current) and (opt not in used or repeatable):
                    yield opt, (getattr(p, "help", None) or "") if p is not None else ""
            return
        param = _argument_at(arguments, positional)
        if param is not None:
            yield from self._values(param, current)

    def _values(self, param: Any, current: str) -> Iterator[tuple[str, str]]:
        kind = _kind(param)
        if kind is None:
            # Not a live kind: what the parameter offers (choices, its own callback; not
            # asked for live kinds: a callback may ask a hub, not necessarily the shell's).
            try:
                offered = [item.value for item in param.shell_complete(self.ctx, current)]
            except Exception:  # a parameter's own callback failing must not break typing
                offered = []
            for value in dict.fromkeys(offered):
                if isinstance(value, str) and value.startswith(current):
                    yield value, ""
            return
        seen: set[str] = set()
        if kind == "signal":
            words = list(SIGNALS)
            current_up = current.upper()
            for w in words:
                if w.startswith(current_up) and w not in seen:
                    yield w, "signal"
            return
        live = self.live()
        if kind == "process":
            candidates = live.process_words()
        elif kind == "source":
            candidates = live.source_words()
        elif kind == "node":
            candidates = live.node_words()
        else:
            candidates = live.filter_words(current)
        states = {p[0]: p[4] for p in live.processes}
        for w in candidates:
            if w.startswith(current) and w not in seen:
                seen.add(w)
                yield w, states.get(w, "")


def is_group(cmd: Any) -> bool:
    """Whether ``cmd`` has subcommands (a Typer app added with ``add_typer``)."""
    return callable(getattr(cmd, "list_commands", None))


def _argument_at(arguments: list[Any], index: int) -> Any:
    """The argument a positional word at ``index`` fills (nargs=-1 takes the rest)."""
    at = 0
    for p in arguments:
        if p.nargs < 0:
            return p
        at += max(1, p.nargs)
        if index < at:
            return p
    return None
