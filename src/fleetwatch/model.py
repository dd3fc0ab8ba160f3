"""The fleet model: plain data, no I/O.

Everything fleetwatch watches is one of four kinds of entity — :class:`Source`,
:class:`Node`, :class:`Process`, :class:`Job` — each a frozen dataclass with a
stable string ``id`` (readable in URLs):

==========  =====================  ==========================================
kind        id                     what it is
==========  =====================  ==========================================
source      ``SOURCE``             a scheduler, a supervisord, a piwheels master
node        ``SOURCE/HOST``        a compile host, a supervisord's host, a slave
process     ``SOURCE:GROUP:NAME``  a supervisord program
job         ``SOURCE#JOBID``       a compile job, a piwheels build
==========  =====================  ==========================================

:class:`Fleet` holds them. Every accepted change (a ``put`` of a whole entity
that differs from what is stored, or a ``del`` of one that exists) is queued;
:meth:`Fleet.commit` turns the queue into one :class:`Delta`. Each change in a
delta gets the next number of one global, gap-free sequence, and a delta's
``seq`` is the number of its last change, so a client that holds state at
``seq = N`` and receives a delta with ``k`` changes checks ``N + k == delta.seq``.
Several changes to one entity between two commits are coalesced: only the last
one is sent, since every ``put`` carries the whole entity.

The last deltas are kept in a ring bounded both in deltas and in changes, so a
client that reconnects with ``since = N`` gets what it missed, or a fresh
snapshot when ``N`` is too old.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal, TypeAlias, TypeVar

import orjson

__all__ = [
    "FINISHED_JOB_STATES",
    "JOB_STATES",
    "KINDS",
    "SOURCE_STATUSES",
    "ActionSpec",
    "Change",
    "Delta",
    "Entity",
    "Fleet",
    "Job",
    "Kind",
    "Node",
    "ParamSpec",
    "Process",
    "Snapshot",
    "Source",
    "dumps",
    "entity_from_dict",
    "plural",
    "positional",
]

Kind: TypeAlias = Literal["source", "node", "process", "job"]
KINDS: tuple[Kind, ...] = ("source", "node", "process", "job")
SOURCE_STATUSES = ("connecting", "online", "offline", "error")
JOB_STATES = ("waiting", "running", "local", "done", "failed")
FINISHED_JOB_STATES = frozenset({"done", "failed"})


def dumps(value: Any) -> bytes:
    """Serialise model objects (dataclasses, tuples, dicts) to JSON bytes."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParamSpec:
    """One parameter of an action, so clients can draw a form for it."""

    name: str
    type: Literal["string", "integer", "boolean"] = "string"
    required: bool = True
    choices: tuple[str, ...] = ()
    """Suggested values (a client may offer them in a menu)."""
    default: str | int | bool | None = None
    title: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionSpec:
    """An action a source can perform, and on which kinds of target.

    Clients draw their buttons and hot-keys from these, not from lists of their own.
    """

    name: str
    title: str
    targets: tuple[str, ...]
    """Target kinds: ``source``, ``node``, ``process``, ``group``, ``job``."""
    confirm: bool = False
    """Destructive or disruptive: clients ask before running it."""
    params: tuple[ParamSpec, ...] = ()
    hotkey: str | None = None
    roles: tuple[str, ...] = ()
    """For node targets: the node roles (``labels["role"]``) the action applies to;
    empty = every node."""

    def applies_to_role(self, role: str | None) -> bool:
        """Whether the action may run on a node whose ``labels["role"]`` is ``role``."""
        return not self.roles or role in self.roles


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    KIND: ClassVar[Kind] = "source"

    id: str
    kind: str
    """``icecream``, ``supervisor`` or ``piwheels``."""
    name: str
    url: str = ""
    """Where it is reached; never carries credentials."""
    status: str = "connecting"
    since: float = 0.0
    """When ``status`` last changed (Unix time)."""
    error: str | None = None
    version: str | None = None
    actions: tuple[ActionSpec, ...] = ()
    info: Mapping[str, Any] = field(default_factory=dict)
    last_seen: float | None = None
    """The last time the system answered, as of the last status change."""

    @property
    def source(self) -> str:
        return self.id


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    KIND: ClassVar[Kind] = "node"

    id: str
    source: str
    name: str
    address: str = ""
    state: str = "online"
    since: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Process:
    """A supervisord program; ``state`` keeps supervisord's own state names."""

    KIND: ClassVar[Kind] = "process"

    id: str
    source: str
    group: str
    name: str
    state: str
    pid: int | None = None
    started: float | None = None
    stopped: float | None = None
    exitstatus: int | None = None
    description: str = ""
    spawnerr: str = ""
    stdout_logfile: str = ""
    stderr_logfile: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    KIND: ClassVar[Kind] = "job"

    id: str
    source: str
    client: str = ""
    server: str = ""
    state: str = "waiting"
    file: str = ""
    started: float | None = None
    ended: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)


Entity: TypeAlias = Source | Node | Process | Job

_T = TypeVar("_T")


def positional(cls: type[_T]) -> Callable[..., _T]:
    """A positional constructor of the frozen dataclass ``cls``, for hot paths.

    It sets the slots directly, at about a third of the cost of the keyword ``__init__``
    (which goes through ``object.__setattr__`` for each field). It takes every field, in
    order, and checks nothing: the caller passes the right types. Like ``dataclasses``
    itself, it generates its function's source, here one line per field.
    """
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    env.update({f"_set_{n}": getattr(cls, n).__set__ for n in names})
    source = "\n".join(
        [f"def new_{cls.__name__}({', '.join(names)}):", "    obj = _new(_cls)"]
        + [f"    _set_{n}(obj, {n})" for n in names]
        + ["    return obj"]
    )
    exec(source, env)  # built from the dataclass's own field names only
    build: Callable[..., _T] = env[f"new_{cls.__name__}"]
    return build


@dataclass(frozen=True, slots=True)
class Change:
    op: Literal["put", "del"]
    kind: Kind
    id: str
    value: Entity | None = None


_new_change = positional(Change)


class Delta:
    """Changes committed together; ``seq`` is the sequence number of the last one.

    A delta in the fleet's ring is *compacted* once the hub has handed it out (at the
    next commit): only its encoded frame is kept. The ring then holds bytes instead of
    a graph of objects — far less memory, and nothing for the cyclic garbage collector
    to walk, which cost a busy hub a fifth of its time (``bench/icecream.py``).
    ``changes`` still works on a compacted delta: it decodes the frame (for tests and
    tools; the stream only sends frames).
    """

    __slots__ = ("_changes", "_json", "seq", "size")

    def __init__(self, seq: int, changes: tuple[Change, ...]) -> None:
        self.seq = seq
        self.size = len(changes)
        self._changes: tuple[Change, ...] | None = changes
        self._json: bytes | None = None

    @property
    def changes(self) -> tuple[Change, ...]:
        if self._changes is not None:
            return self._changes
        assert self._json is not None
        return tuple(
            Change(
                c["op"],
                c["kind"],
                c["id"],
                None if c["value"] is None else entity_from_dict(c["kind"], c["value"]),
            )
            for c in orjson.loads(self._json)["changes"]
        )

    @property
    def first_seq(self) -> int:
        return self.seq - self.size + 1

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "changes": self.changes}

    def frame(self) -> bytes:
        """The stream frame ``{"t": "delta", "seq": N, "changes": [...]}``, encoded once."""
        if self._json is None:
            self._json = dumps({"t": "delta", "seq": self.seq, "changes": self._changes})
        return self._json

    def compact(self) -> None:
        """Keep only the encoded frame."""
        self.frame()
        self._changes = None

    def __repr__(self) -> str:
        return f"Delta(seq={self.seq}, changes={self.size})"


@dataclass(frozen=True, slots=True)
class Snapshot:
    seq: int
    name: str
    epoch: str
    sources: tuple[Source, ...]
    nodes: tuple[Node, ...]
    processes: tuple[Process, ...]
    jobs: tuple[Job, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "name": self.name,
            "epoch": self.epoch,
            "sources": self.sources,
            "nodes": self.nodes,
            "processes": self.processes,
            "jobs": self.jobs,
        }

    def entities(self) -> Iterator[Entity]:
        yield from self.sources
        yield from self.nodes
        yield from self.processes
        yield from self.jobs


_PLURAL: dict[Kind, str] = {
    "source": "sources",
    "node": "nodes",
    "process": "processes",
    "job": "jobs",
}


class Fleet:
    """Every entity fleetwatch knows of, with a gap-free change sequence."""

    def __init__(
        self,
        name: str = "fleetwatch",
        *,
        ring: int = 10_000,
        ring_changes: int = 200_000,
        finished_jobs: int = 1_000,
    ):
        if ring < 1 or ring_changes < 1 or finished_jobs < 0:
            raise ValueError("ring and ring_changes must be >= 1, finished_jobs >= 0")
        self.name = name
        self.epoch = secrets.token_hex(8)
        """Names this fleet's sequence: a client resuming with another epoch's seq
        (the hub restarted) must start from a snapshot."""
        self._ring_changes_max = ring_changes
        self._ring_changes = 0
        self._seq = 0
        self._items: dict[Kind, dict[str, Entity]] = {k: {} for k in KINDS}
        self._by_source: dict[tuple[Kind, str], set[str]] = {}
        self._pending: dict[tuple[Kind, str], Change] = {}
        self._ring: deque[Delta] = deque(maxlen=ring)
        self._finished: OrderedDict[str, None] = OrderedDict()
        """The finished jobs, oldest first. An OrderedDict, not a dict: evicting from the
        front of a plain dict leaves holes that ``next(iter())`` walks over each time."""
        self._finished_max = finished_jobs

    # -- reading ---------------------------------------------------------------

    @property
    def seq(self) -> int:
        """The sequence number of the last committed change."""
        return self._seq

    @property
    def dirty(self) -> bool:
        """True when changes wait for :meth:`commit`."""
        return bool(self._pending)

    def get(self, kind: Kind, id: str) -> Entity | None:
        return self._items[kind].get(id)

    def all(self, kind: Kind) -> Iterable[Entity]:
        return self._items[kind].values()

    def ids_of_source(self, kind: Kind, source: str) -> frozenset[str]:
        return frozenset(self._by_source.get((kind, source), ()))

    def count(self, kind: Kind) -> int:
        return len(self._items[kind])

    @property
    def ring_size(self) -> int:
        """Deltas in the ring (what a resuming client can still be sent)."""
        return len(self._ring)

    def snapshot(self) -> Snapshot:
        """The committed state; raises if changes are pending (commit first)."""
        if self._pending:
            raise RuntimeError("snapshot() with uncommitted changes: call commit() first")

        def sorted_values(kind: Kind) -> tuple[Any, ...]:
            items = self._items[kind]
            return tuple(items[k] for k in sorted(items))

        return Snapshot(
            seq=self._seq,
            name=self.name,
            epoch=self.epoch,
            sources=sorted_values("source"),
            nodes=sorted_values("node"),
            processes=sorted_values("process"),
            jobs=sorted_values("job"),
        )

    def deltas_since(self, seq: int) -> list[Delta] | None:
        """The deltas after ``seq``, or None when the ring no longer reaches back that far.

        ``seq`` must be a delta boundary (a ``seq`` this fleet handed out).
        """
        if seq == self._seq:
            return []
        if seq > self._seq or not self._ring:
            return None
        oldest = self._ring[0]
        if seq < oldest.first_seq - 1:
            return None
        out = [d for d in self._ring if d.seq > seq]
        if out and out[0].first_seq != seq + 1:
            return None  # not a boundary
        return out

    # -- writing ---------------------------------------------------------------

    def put(self, entity: Entity) -> bool:
        """Store ``entity`` (whole); return True when that changed anything."""
        kind = entity.KIND
        items = self._items[kind]
        old = items.get(entity.id)
        if old == entity:
            return False
        items[entity.id] = entity
        if old is None:
            self._by_source.setdefault((kind, entity.source), set()).add(entity.id)
        elif old.source != entity.source:
            self._index_remove(kind, old.source, entity.id)
            self._by_source.setdefault((kind, entity.source), set()).add(entity.id)
        self._queue(_new_change("put", kind, entity.id, entity))
        if isinstance(entity, Job) and _finished(entity) != _finished(old):
            if _finished(entity):
                self._job_finished(entity.id)
            else:
                self._finished.pop(entity.id, None)  # running again
        return True

    def delete(self, kind: Kind, id: str) -> bool:
        """Remove an entity (and, for a source, everything it owns); True if it existed."""
        old = self._items[kind].pop(id, None)
        if old is None:
            return False
        self._index_remove(kind, old.source, id)
        self._queue(_new_change("del", kind, id, None))
        if kind == "job":
            self._finished.pop(id, None)
        if kind == "source":
            for owned in ("node", "process", "job"):
                for oid in list(self._by_source.get((owned, id), ())):
                    self.delete(owned, oid)
        return True

    def sync(self, kind: Kind, source: str, entities: Iterable[Entity]) -> int:
        """Make ``source``'s entities of ``kind`` exactly ``entities``; return the changes made."""
        keep: set[str] = set()
        changed = 0
        for e in entities:
            keep.add(e.id)
            changed += self.put(e)
        for gone in self._by_source.get((kind, source), set()) - keep:
            changed += self.delete(kind, gone)
        return changed

    def apply(self, change: Change) -> bool:
        """Apply a change as sent in a delta (for clients and tests that replay deltas)."""
        if change.op == "put":
            if change.value is None:
                raise ValueError(f"put of {change.kind} {change.id!r} without a value")
            return self.put(change.value)
        return self.delete(change.kind, change.id)

    def commit(self) -> Delta | None:
        """Turn pending changes into one delta (kept in the ring); None when nothing changed."""
        if not self._pending:
            return None
        changes = tuple(self._pending.values())
        self._pending.clear()
        self._seq += len(changes)
        delta = Delta(self._seq, changes)
        ring = self._ring
        if ring:
            ring[-1].compact()  # handed out by now (the hub pushes each delta as it commits)
        if len(ring) == ring.maxlen:
            self._ring_changes -= ring[0].size
        ring.append(delta)
        self._ring_changes += len(changes)
        # Bounded by changes too: a few huge deltas must not hold gigabytes (bench/hub.py).
        while self._ring_changes > self._ring_changes_max and len(ring) > 1:
            self._ring_changes -= ring.popleft().size
        return delta

    # -- internals -------------------------------------------------------------

    def _queue(self, change: Change) -> None:
        key = (change.kind, change.id)
        # Coalesce: the last change of an entity wins, and moves to the end so
        # that replaying the delta in order gives the same final state.
        self._pending.pop(key, None)
        self._pending[key] = change

    def _index_remove(self, kind: Kind, source: str, id: str) -> None:
        ids = self._by_source.get((kind, source))
        if ids is not None:
            ids.discard(id)
            if not ids:
                del self._by_source[(kind, source)]

    def _job_finished(self, id: str) -> None:
        self._finished[id] = None
        while len(self._finished) > self._finished_max:
            oldest, _ = self._finished.popitem(last=False)
            self.delete("job", oldest)


def _finished(entity: Entity | None) -> bool:
    return isinstance(entity, Job) and entity.state in FINISHED_JOB_STATES


def entity_from_dict(kind: Kind, data: Mapping[str, Any]) -> Entity:
    """Rebuild an entity from its JSON form (used by clients and tests)."""
    cls: type[Any] = {"source": Source, "node": Node, "process": Process, "job": Job}[kind]
    values = dict(data)
    if kind == "source":
        values["actions"] = tuple(
            ActionSpec(
                **{
                    **a,
                    "targets": tuple(a["targets"]),
                    "roles": tuple(a.get("roles", ())),
                    "params": tuple(
                        ParamSpec(**{**p, "choices": tuple(p.get("choices", ()))})
                        for p in a.get("params", ())
                    ),
                }
            )
            for a in values.get("actions", ())
        )
    return cls(**values)  # type: ignore[no-any-return]


def plural(kind: Kind) -> str:
    return _PLURAL[kind]
