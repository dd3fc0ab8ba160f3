"""The terminal UI: piw-monitor's screen, for every kind of fleet.

Layout, top to bottom::

    ┌ tree: sources and their ┬ list: piw-monitor's columns (S # Label ABI Up Time ┐
    │ groups, processes, nodes│ Task Time Task) for the rows of the tree's source   │
    ├ stats box of the selection, with history graphs ┬ log pane (a process)       ┤
    ├ filter (after /) ─────────────────────────────────────────────────────────────┤
    ├ control bar: the selection's actions from source.actions, and Quit ───────────┤
    └ status line: Connected / Waiting for connection / Reconnecting · last result ─┘

The model comes from a :class:`~fleetwatch.tui.backend.Backend` (a hub's stream, or a hub
in this process). Changes are collected as they come and drawn at most every 100 ms:
rows and tree labels are updated in place, and rebuilt only when entities come or go or
a row moves. A one-second tick refreshes the times.

Keys (the model's hot-keys come on top, from the selected row's actions):

| Key | Does |
| --- | --- |
| Up/Down, Home/End | move in the tree or the list |
| Tab, Shift+Tab | between the tree, the list and the controls |
| Enter (list) | the selected row's actions, as piw-monitor's dialog |
| / | filter the list (the filter language); Escape clears it |
| l | log pane: stdout, stderr, hidden |
| ?, F1 | help |
| q | quit (the watched systems are unaffected) |
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, TypeVar

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult, ScreenStackError
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.coordinate import Coordinate
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, DataTable, Input, Static, Tree
from textual.widgets.tree import TreeNode

from fleetwatch import filters
from fleetwatch.client import HubError
from fleetwatch.client.mirror import Event
from fleetwatch.model import ActionSpec, ParamSpec
from fleetwatch.tui import rows as R
from fleetwatch.tui._dialogs import (
    ActionMenu,
    ConfirmScreen,
    HelpScreen,
    ParamsScreen,
    help_text,
    short_title,
)
from fleetwatch.tui._widgets import ControlBar, GraphData, LogPane, StatsBox, button_id
from fleetwatch.tui.backend import Backend

__all__ = ["FleetApp"]

Ref = tuple[str, str]
"""An entity (or a group) as (kind, id)."""

HISTORY = 100
"""Samples kept per node for the graphs (piw-monitor keeps 100)."""

DRAW_INTERVAL = 0.1
"""Changes are drawn at most this often (seconds), as the web app repaints."""

_LOG_CHANNELS = ("stdout", "stderr", None)


_F = TypeVar("_F", bound=Callable[..., Any])


def _while_mounted(method: _F) -> _F:
    """A timer's or a message's handler that does nothing once the app's widgets are
    gone (a timer or a queued message can still come while the app closes)."""

    @functools.wraps(method)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except (NoMatches, ScreenStackError):
            app = args[0]
            if app.is_running and app.screen_stack and app._main.query("#list"):
                raise  # not closing: a real bug
            return None

    return guarded  # type: ignore[return-value]


class FleetApp(App[None]):
    """The TUI over one backend (see the module docstring)."""

    CSS_PATH = "app.tcss"
    TITLE = "fleetwatch"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("slash", "filter", "Filter"),
        Binding("l", "log", "Log"),
        Binding("question_mark,f1", "help", "Help"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]
    _APP_KEYS = frozenset({"q", "slash", "l", "question_mark", "f1", "escape", "tab", "shift+tab"})

    def __init__(self, backend: Backend, *, single: bool = False, title: str | None = None) -> None:
        """
        Args:
            backend: where the model comes from and actions go.
            single: piw-monitor's screen: no tree, one list with tree branches in it.
            title: the terminal's title (default: fleetwatch and the hub's name).
        """
        super().__init__()
        self.backend = backend
        self.single = single
        if title:
            self.title = title
        self.selected: Ref | None = None
        """The row the stats box, the controls and the hot-keys are about."""
        self.scope: str | None = None
        """The source whose rows the list shows (None: every source)."""
        self.query_text = ""
        self.result = ""
        """What the last action did, as the status line says it."""
        self.log_channel: str | None = "stdout"
        self.history: dict[str, deque[Mapping[str, float]]] = {}
        self._dirty: set[Ref] = set()
        self._rebuild = True
        self._flush_pending = False
        self._row_cells: dict[str, tuple[Any, ...]] = {}
        self._row_order: list[str] = []
        self._row_branch: dict[str, str] = {}
        self._tree_nodes: dict[Ref, TreeNode[Ref]] = {}
        self._collapsed: set[Ref] = set()
        self._log_of: str | None = None
        self._group_members: dict[str, list[str]] = {}
        self._status_text: str | None = None
        self._ids: set[Ref] = set()
        """Every source, node and process known: one that comes or goes rebuilds."""
        self._tree_settling = False
        """Between a rebuild of the tree and its cursor's return to the selection."""
        self._actions_shown: tuple[Any, ...] | None = None

    # -- layout ---------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            tree: Tree[Ref] = Tree("fleet", data=("fleet", ""), id="tree")
            tree.show_root = True
            tree.guide_depth = 2
            yield tree
            table: DataTable[Any] = DataTable(id="list", cursor_type="row")
            yield table
        with Horizontal(id="details"):
            yield StatsBox(id="stats")
            yield LogPane(id="log-pane")
        yield Input(placeholder="filter: state:running group:web -name:idle", id="filter")
        yield ControlBar(id="controls")
        yield Static("", id="status")

    def on_mount(self) -> None:
        table = self._main.query_one("#list", DataTable)
        for column in R.COLUMNS:
            table.add_column(column + ("^" if column in ("Label", "ABI") else ""), key=column)
        if self.single:
            self._main.query_one("#tree").display = False
            table.focus()
        else:
            self._main.query_one("#tree").focus()
        self._main.query_one("#log-pane").display = False
        self.backend.listeners.append(self._on_event)
        self.run_worker(self.backend.run(), name="backend", exclusive=True, group="backend")
        self.set_interval(1.0, self._tick)
        self._show_status()
        self._request_flush(rebuild=True)

    async def on_unmount(self) -> None:
        if self._on_event in self.backend.listeners:
            self.backend.listeners.remove(self._on_event)
        await self.backend.close()

    @property
    def _main(self) -> Screen[Any]:
        """The screen with the tree and the list (a dialog may be on top of it)."""
        return self.screen_stack[0] if self.screen_stack else self.screen

    def _focused(self) -> Widget | None:
        """The focused widget; None once the app is closing (its screens are gone, and a
        message still queued must not fail on them)."""
        if not self.screen_stack:
            return None
        return self.focused

    # -- the model ------------------------------------------------------------------

    @property
    def entities(self) -> dict[str, dict[str, dict[str, Any]]]:
        return self.backend.entities

    def entity(self, ref: Ref | None) -> dict[str, Any] | None:
        if ref is None or ref[0] not in self.entities:
            return None
        return self.entities[ref[0]].get(ref[1])

    def source_of(self, ref: Ref | None) -> dict[str, Any] | None:
        if ref is None:
            return None
        kind, id = ref
        if kind == "source":
            return self.entities["source"].get(id)
        if kind == "group":
            return self.entities["source"].get(id.split(":", 1)[0])
        e = self.entity(ref)
        return self.entities["source"].get(str(e["source"])) if e else None

    def _on_event(self, event: Event) -> None:
        if event.type == "snapshot":
            self._ids = {(k, id) for k in ("source", "node", "process") for id in self.entities[k]}
            for node in self.entities["node"].values():
                self._record(node)
            self._request_flush(rebuild=True)
        elif event.type == "delta":
            rebuild = False
            for change in event.changes:
                if change["kind"] == "job":
                    continue
                ref = (change["kind"], change["id"])
                if change["op"] == "del":
                    self._ids.discard(ref)
                    rebuild = True
                elif ref not in self._ids:
                    self._ids.add(ref)
                    rebuild = True
                if change["op"] == "put" and change["kind"] == "node":
                    self._record(change["value"])
                self._dirty.add(ref)
            self._request_flush(rebuild=rebuild)
        elif event.type == "status":
            self._request_flush()

    def _record(self, node: Mapping[str, Any]) -> None:
        metrics = node.get("metrics")
        if isinstance(metrics, Mapping) and metrics:
            samples = self.history.get(node["id"])
            if samples is None:
                samples = self.history[node["id"]] = deque(maxlen=HISTORY)
            samples.append(metrics)

    def _request_flush(self, rebuild: bool = False) -> None:
        self._rebuild = self._rebuild or rebuild
        if not self._flush_pending:
            self._flush_pending = True
            self.set_timer(DRAW_INTERVAL, self._draw)

    @_while_mounted
    def _draw(self) -> None:
        self._flush_pending = False
        if not self.is_running or not self.screen_stack:
            return
        rebuild, self._rebuild = self._rebuild, False
        dirty, self._dirty = self._dirty, set()
        if rebuild:
            self._build_tree()
            self._build_list()
        else:
            self._update_tree(dirty)
            if not self._update_list(dirty):
                self._build_list()
        gone = self.selected is not None and self.entity(self.selected) is None
        if gone and (self.selected[0] != "group" or self.selected not in self._tree_nodes):  # type: ignore[index]
            self.selected = None
        if self.selected is None and self.single:
            self._select_from_cursor()
        self._show_selection()
        self._show_status()

    # -- the tree -------------------------------------------------------------------

    def _tree_label(self, ref: Ref) -> Text:
        kind, id = ref
        if kind == "group":
            procs = self._group_processes(id)
            running = sum(p.get("state") == "RUNNING" for p in procs)
            return Text(f"{id.split(':', 1)[1]} ({running}/{len(procs)})")
        e = self.entity(ref) or {}
        if kind == "source":
            status = str(e.get("status", ""))
            text = Text(R.MARK + " ", style=R.state_style("source", status))
            text.append(str(e.get("name", id)), style="bold")
            text.append(f"  {e.get('kind', '')} {status}", style="dim")
            return text
        if kind == "process":
            state = str(e.get("state", ""))
            text = Text(R.MARK + " ", style=R.state_style("process", state))
            text.append(str(e.get("name", id)))
            text.append(f"  {state}", style="dim")
            return text
        labels = e.get("labels") or {}
        state = labels.get("status") or str(e.get("state", ""))
        text = Text(R.MARK + " ", style=R.state_style("node", state))
        text.append(labels.get("label") or str(e.get("name", id)))
        return text

    def _group_processes(self, group_ref: str) -> list[dict[str, Any]]:
        members = self._group_members.get(group_ref)
        if members is not None:  # the tree's index (rebuilt whenever processes come or go)
            table = self.entities["process"]
            return [table[id] for id in members if id in table]
        source, _, group = group_ref.partition(":")
        return [
            p
            for p in self.entities["process"].values()
            if p.get("source") == source and p.get("group") == group
        ]

    def _build_tree(self) -> None:
        tree: Tree[Ref] = self._main.query_one("#tree", Tree)
        for ref, node in self._tree_nodes.items():
            if not node.is_expanded and node.allow_expand:
                self._collapsed.add(ref)
            elif ref in self._collapsed and node.is_expanded:
                self._collapsed.discard(ref)
        tree.clear()
        tree.root.set_label(Text(self.backend.name or "fleet", style="bold"))
        self._tree_nodes = {}
        self._group_members = {}
        for p in self.entities["process"].values():
            group_id = f"{p.get('source')}:{p.get('group', '')}"
            self._group_members.setdefault(group_id, []).append(str(p["id"]))
        for sid in sorted(self.entities["source"]):
            source = self.entities["source"][sid]
            top: Ref = ("source", sid)
            branch = tree.root.add(self._tree_label(top), data=top)
            self._tree_nodes[top] = branch
            for child in self._children(source):
                if child[0] == "group":
                    group = branch.add(self._tree_label(child), data=child)
                    self._tree_nodes[child] = group
                    procs = sorted(self._group_processes(child[1]), key=lambda p: str(p["name"]))
                    for p in procs:
                        leaf = ("process", str(p["id"]))
                        self._tree_nodes[leaf] = group.add_leaf(self._tree_label(leaf), data=leaf)
                    if child not in self._collapsed:
                        group.expand()
                else:
                    self._tree_nodes[child] = branch.add_leaf(self._tree_label(child), data=child)
            if top not in self._collapsed:
                branch.expand()
        tree.root.expand()
        if self.selected is not None and self.selected in self._tree_nodes:
            self._tree_settling = True
            self.call_after_refresh(self._tree_settled, self._tree_nodes[self.selected])

    def _tree_settled(self, node: TreeNode[Ref]) -> None:
        self._main.query_one("#tree", Tree).move_cursor(node)
        self._tree_settling = False

    def _children(self, source: Mapping[str, Any]) -> list[Ref]:
        sid = source["id"]
        out: list[Ref] = []
        if source.get("kind") == "supervisor":
            groups: dict[str, list[dict[str, Any]]] = {}
            for p in self.entities["process"].values():
                if p.get("source") == sid:
                    groups.setdefault(str(p.get("group", "")), []).append(p)
            for group in sorted(groups):
                procs = groups[group]
                if len(procs) == 1 and procs[0].get("name") == group:
                    out.append(("process", str(procs[0]["id"])))
                else:
                    out.append(("group", f"{sid}:{group}"))
            return out
        nodes = [n for n in self.entities["node"].values() if n.get("source") == sid]
        nodes.sort(key=lambda n: R.sort_key("node", n))
        out.extend(("node", str(n["id"])) for n in nodes)
        procs = [p for p in self.entities["process"].values() if p.get("source") == sid]
        out.extend(("process", str(p["id"])) for p in sorted(procs, key=lambda p: str(p["id"])))
        return out

    def _update_tree(self, dirty: Iterable[Ref]) -> None:
        groups: set[Ref] = set()
        for ref in dirty:
            node = self._tree_nodes.get(ref)
            if node is not None:
                node.set_label(self._tree_label(ref))
            if ref[0] == "process":
                e = self.entity(ref)
                if e is not None:
                    groups.add(("group", f"{e['source']}:{e.get('group', '')}"))
        for group in groups:  # each group's "(running/all)" once per draw
            if group in self._tree_nodes:
                self._tree_nodes[group].set_label(self._tree_label(group))

    @on(Tree.NodeHighlighted, "#tree")
    @_while_mounted
    def _tree_moved(self, event: Tree.NodeHighlighted[Ref]) -> None:
        ref = event.node.data
        tree = event.control
        if ref is None or self._focused() is not tree or self._tree_settling:
            return
        if tree is not None and tree.cursor_node is not event.node:
            return  # a stale highlight (of a rebuilt tree): the cursor is elsewhere now
        self._select(ref if ref[0] != "fleet" else None, from_tree=True)

    # -- the list -------------------------------------------------------------------

    def _list_entities(self) -> list[tuple[str, dict[str, Any]]]:
        """The rows in scope that pass the filter, in piw-monitor's order."""
        query = filters.parse(self.query_text)
        out: list[tuple[str, dict[str, Any]]] = []
        for sid, source in self.entities["source"].items():
            if self.scope is not None and sid != self.scope:
                continue
            for kind in R.row_kinds(source):
                for e in self.entities[kind].values():
                    if e.get("source") == sid and (not query or query.matches(e)):
                        out.append((kind, e))
        out.sort(key=lambda ke: R.sort_key(*ke))
        return out

    def _row(self, kind: str, e: Mapping[str, Any], now: float) -> R.Row:
        key = R.row_key(kind, str(e["id"]))
        source = self.entities["source"].get(str(e.get("source")))
        return R.make_row(kind, e, source, now, branch=self._row_branch.get(key, ""))

    def _build_list(self) -> None:
        table: DataTable[Any] = self._main.query_one("#list", DataTable)
        current = self._cursor_key()
        items = self._list_entities()
        self._row_branch = {}
        if self.single:
            slaves = [R.row_key(k, str(e["id"])) for k, e in items if not R.is_master(e)]
            for i, key in enumerate(slaves):
                self._row_branch[key] = "└─" if i == len(slaves) - 1 else "├─"
        now = time.time()
        table.clear()
        self._row_cells = {}
        self._row_order = []
        for kind, e in items:
            row = self._row(kind, e, now)
            table.add_row(*row.cells, key=row.key)
            self._row_cells[row.key] = row.cells
            self._row_order.append(row.key)
        if current in self._row_cells:
            table.move_cursor(row=table.get_row_index(current), animate=False)

    def _update_list(self, dirty: Iterable[Ref]) -> bool:
        """Update changed rows in place; False when the list must be rebuilt instead."""
        query = filters.parse(self.query_text)
        table: DataTable[Any] = self._main.query_one("#list", DataTable)
        now = time.time()
        lo, hi = self._visible(table)
        for kind, id in dirty:
            if kind == "source":
                if self.scope in (None, id):
                    return False  # a source's status colours its rows; its kind picks them
                continue
            key = R.row_key(kind, id)
            e = self.entity((kind, id))
            if key not in self._row_cells:
                if e is not None and self._in_scope(kind, e) and (not query or query.matches(e)):
                    return False
                continue
            if e is None or (query and not query.matches(e)):
                return False
            index = self._row_order.index(key)
            order = R.sort_key(kind, e)
            neighbours = (self._row_order[index - 1] if index else None, self._neighbour(index + 1))
            for n in neighbours:
                if n is None:
                    continue
                nk, nid = n.split("|", 1)
                ne = self.entity((nk, nid))
                if ne is None:
                    return False
                before = n == neighbours[0]
                if (R.sort_key(nk, ne) > order) if before else (R.sort_key(nk, ne) < order):
                    return False
            if lo <= index < hi:  # rows out of view are brought up to date by the tick
                self._set_cells(table, key, self._row(kind, e, now).cells)
        return True

    def _visible(self, table: DataTable[Any]) -> tuple[int, int]:
        """The indices of the rows in view (and a few around them)."""
        first = max(0, int(table.scroll_y) - 2)
        return first, first + table.size.height + 4

    def _neighbour(self, index: int) -> str | None:
        return self._row_order[index] if index < len(self._row_order) else None

    def _in_scope(self, kind: str, e: Mapping[str, Any]) -> bool:
        source = self.entities["source"].get(str(e.get("source")))
        if source is None or (self.scope is not None and source["id"] != self.scope):
            return False
        return kind in R.row_kinds(source)

    def _set_cells(self, table: DataTable[Any], key: str, cells: tuple[Any, ...]) -> None:
        old = self._row_cells.get(key, ())
        for column, value, was in zip(R.COLUMNS, cells, old, strict=False):
            if value != was:
                table.update_cell(key, column, value)
        self._row_cells[key] = cells

    @_while_mounted
    def _tick(self) -> None:
        """Once a second: the times in the visible rows and the stats box move on (a row
        scrolled into view is brought up to date at the next tick, or at once when the
        cursor brought it there)."""
        if not self.screen_stack:
            return
        self._tick_rows()
        self._show_selection()

    @_while_mounted
    def _tick_rows(self) -> None:
        if not self.screen_stack:
            return
        table: DataTable[Any] = self._main.query_one("#list", DataTable)
        now = time.time()
        first, last = self._visible(table)
        for key in self._row_order[first:last]:
            kind, id = key.split("|", 1)
            e = self.entity((kind, id))
            if e is not None:
                self._set_cells(table, key, self._row(kind, e, now).cells)

    def _cursor_key(self) -> str | None:
        table: DataTable[Any] = self._main.query_one("#list", DataTable)
        if not self._row_order or table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key
        except Exception:
            return None
        return str(key.value) if key.value is not None else None

    @on(DataTable.RowHighlighted, "#list")
    @_while_mounted
    def _list_moved(self, event: DataTable.RowHighlighted) -> None:
        if self._focused() is not event.control or event.row_key.value is None:
            return
        if str(event.row_key.value) != self._cursor_key():
            return  # a stale highlight (of a rebuilt list): the cursor is elsewhere now
        self.call_after_refresh(self._tick_rows)
        kind, id = str(event.row_key.value).split("|", 1)
        self._select((kind, id))

    @on(DataTable.RowSelected, "#list")
    def _list_enter(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is None:
            return
        kind, id = str(event.row_key.value).split("|", 1)
        self._select((kind, id))
        self.open_action_menu()

    @_while_mounted
    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        if event.widget.id == "list":
            key = self._cursor_key()
            if key is not None:
                kind, id = key.split("|", 1)
                self._select((kind, id))

    # -- selection, stats, controls, status -------------------------------------------

    def _select(self, ref: Ref | None, *, from_tree: bool = False) -> None:
        if from_tree:
            source = self.source_of(ref)
            scope = None if source is None else str(source["id"])
            if scope != self.scope:
                self.scope = scope
                self._build_list()
            if ref is not None and ref[0] in ("process", "node"):
                key = R.row_key(*ref)
                if key in self._row_cells:
                    table: DataTable[Any] = self._main.query_one("#list", DataTable)
                    table.move_cursor(row=table.get_row_index(key), animate=False)
        if ref != self.selected:
            self.selected = ref
            self._show_selection()
            self._show_status()

    @_while_mounted
    def _select_from_cursor(self) -> None:
        key = self._cursor_key()
        if key is not None:
            kind, id = key.split("|", 1)
            self.selected = (kind, id)

    def _chain(self, ref: Ref | None) -> list[Ref]:
        """The selection, then what contains it: an action applies to the first it can
        (process → its group → its source; node → its source)."""
        if ref is None:
            return []
        kind, _ = ref
        out = [ref]
        e = self.entity(ref)
        if kind == "process" and e is not None:
            out.append(("group", f"{e['source']}:{e.get('group', '')}"))
        source = self.source_of(ref)
        if source is not None and kind != "source":
            out.append(("source", str(source["id"])))
        return out

    def _target(self, spec: ActionSpec, source: Mapping[str, Any], own: bool) -> Ref | None:
        """What ``spec`` acts on from the selection (None: it does not apply here).

        ``own``: only the selected row itself (the Enter dialog), not what contains it.
        """
        if spec.roles:
            return self._role_target(spec, source, own)
        chain = self._chain(self.selected)
        if own:
            chain = chain[:1]
        return next((r for r in chain if r[0] in spec.targets), None)

    def _role_target(self, spec: ActionSpec, source: Mapping[str, Any], own: bool) -> Ref | None:
        """An action for some node roles (its ``roles``), as piw-monitor's controls:
        master actions act on the master whichever row is selected (its p, r, t), slave
        actions on the selected slave (its k, i, s); ``resume`` (both) on the selected
        slave, else on the master.
        """
        sid = str(source["id"])
        master = next(
            (
                n
                for n in self.entities["node"].values()
                if n.get("source") == sid and R.is_master(n)
            ),
            None,
        )
        master_ref: Ref | None = None
        if master is not None and "node" in spec.targets:
            master_ref = ("node", str(master["id"]))
        elif "source" in spec.targets:
            master_ref = ("source", sid)
        e = self.entity(self.selected)
        on_slave = (
            self.selected is not None
            and self.selected[0] == "node"
            and e is not None
            and not R.is_master(e)
        )
        for_master = "master" in spec.roles
        slave_action = "slave" in spec.roles and "node" in spec.targets
        if on_slave and slave_action and (own or not for_master):
            return self.selected
        if own and on_slave:
            return None
        return master_ref if for_master else None

    def actions_here(self, own: bool = False) -> list[tuple[ActionSpec, Ref | None]]:
        """The selected row's source's actions, each with the target it would act on
        (None: it does not apply here, or the source is not online)."""
        source = self.source_of(self.selected)
        if source is None:
            return []
        online = source.get("status") == "online"
        out: list[tuple[ActionSpec, Ref | None]] = []
        for spec in _specs(source):
            target = self._target(spec, source, own)
            out.append((spec, target if online else None))
        return out

    def _show_selection(self) -> None:
        actions = self.actions_here()
        shown = tuple((spec.name, target) for spec, target in actions)
        if shown != self._actions_shown:
            self._actions_shown = shown
            self._main.query_one("#controls", ControlBar).show(
                [
                    (spec, target is not None, _ref_text(target) if target else "")
                    for spec, target in actions
                ]
            )
        text, graphs = self._stats(self.selected)
        self._main.query_one("#stats", StatsBox).show(text, graphs)
        self._show_log()

    def _show_status(self) -> None:
        parts = [self.backend.status_text]
        where = " ".join(x for x in (self.backend.name, self.backend.where) if x)
        if where:
            parts.append(where)
        if self.result:
            parts.append(self.result)
        if self.query_text:
            parts.append(f"filter: {self.query_text}")
        line = "  │  ".join(parts)
        if line != self._status_text:
            self._status_text = line
            self._main.query_one("#status", Static).update(Text(line), layout=False)

    @property
    def status_line(self) -> str:
        """The status line's text (for tests and scripts)."""
        content = self._main.query_one("#status", Static).content
        return str(content)

    def _stats(self, ref: Ref | None) -> tuple[Text, list[GraphData]]:
        text = Text()
        graphs: list[GraphData] = []
        if ref is None:
            counts = {k: len(v) for k, v in self.entities.items()}
            text.append(f"{self.backend.name or 'fleet'}\n", style="bold")
            text.append(
                f"{counts['source']} sources, {counts['node']} nodes, "
                f"{counts['process']} processes, {counts['job']} jobs"
            )
            return text, graphs
        kind, id = ref
        source = self.source_of(ref) or {}
        e = self.entity(ref)
        if kind == "group":
            procs = self._group_processes(id)
            text.append(f"group {id}\n", style="bold")
            states: dict[str, int] = {}
            for p in procs:
                states[str(p.get("state"))] = states.get(str(p.get("state")), 0) + 1
            text.append(", ".join(f"{n} {s}" for s, n in sorted(states.items())))
            return text, self._graphs_of_source(source)
        if e is None:
            return text, graphs
        if kind == "source":
            _line(text, "Source", f"{e.get('name')} ({e.get('kind')})")
            _line(text, "Status", f"{e.get('status')} for {R.duration(time.time() - e['since'])}")
            _line(text, "URL", e.get("url"))
            _line(text, "Version", e.get("version"))
            _line(text, "Error", e.get("error"))
            info = e.get("info") or {}
            for k, v in list(info.items())[:6]:
                if not isinstance(v, Mapping | list):
                    _line(text, k, v)
            return text, self._graphs_of_source(e)
        if kind == "process":
            offset = float((source.get("info") or {}).get("clock_offset") or 0)
            _line(text, "Process", f"{e.get('group')}:{e.get('name')}")
            _line(text, "State", e.get("state"))
            _line(text, "Pid", e.get("pid"))
            if e.get("started") and e.get("state") in ("RUNNING", "STOPPING"):
                _line(text, "Up", R.duration(time.time() - e["started"] - offset))
            _line(text, "Description", e.get("description"))
            _line(text, "Exit status", e.get("exitstatus"))
            _line(text, "Spawn error", e.get("spawnerr"))
            _line(text, "Stdout", e.get("stdout_logfile"))
            return text, self._graphs_of_source(source)
        # a node
        labels: Mapping[str, str] = e.get("labels") or {}
        metrics: Mapping[str, float] = e.get("metrics") or {}
        if source.get("kind") == "piwheels":
            _piwheels_stats(text, e, labels, metrics)
        else:
            _line(text, "Host", f"{e.get('name')} {e.get('address') or ''}".strip())
            _line(text, "State", e.get("state"))
            for k, v in list(labels.items())[:8]:
                _line(text, k, v)
            for k, v in list(metrics.items())[:10]:
                _line(text, k, _number(v))
        return text, self._graphs(str(source.get("kind", "")), e)

    def _graphs(self, source_kind: str, node: Mapping[str, Any]) -> list[GraphData]:
        samples = list(self.history.get(str(node["id"]), ()))
        out: list[GraphData] = []
        for g in R.graphs_for(source_kind, node):
            values = [v for v in (g.value(m) for m in samples) if v is not None]
            if not values:
                continue
            out.append((g.title, values, f"{_number(values[-1])}{g.unit}"))
        return out

    def _graphs_of_source(self, source: Mapping[str, Any]) -> list[GraphData]:
        node = next(
            (n for n in self.entities["node"].values() if n.get("source") == source.get("id")),
            None,
        )
        return self._graphs(str(source.get("kind", "")), node) if node else []

    # -- the log pane -------------------------------------------------------------------

    def _show_log(self) -> None:
        pane = self._main.query_one("#log-pane", LogPane)
        ref = self.selected
        source = self.source_of(ref)
        wanted = (
            f"{ref[1]}|{self.log_channel}"
            if ref is not None
            and ref[0] == "process"
            and self.log_channel is not None
            and source is not None
            and source.get("kind") == "supervisor"
            else None
        )
        if wanted == self._log_of:
            return
        self._log_of = wanted
        pane.display = wanted is not None
        if wanted is None:
            self.workers.cancel_group(self, "log")
            return
        assert ref is not None
        assert self.log_channel is not None
        self._follow_log(ref[1], self.log_channel)

    @work(exclusive=True, group="log")
    async def _follow_log(self, process: str, channel: str) -> None:
        try:
            await self._follow_log_loop(process, channel)
        except (NoMatches, ScreenStackError):
            return  # the app is closing

    async def _follow_log_loop(self, process: str, channel: str) -> None:
        pane = self._main.query_one("#log-pane", LogPane)
        pane.clear()
        pane.title(f"{process} {channel} (l: next channel)")
        offset: int | None = None
        while True:
            try:
                chunk = await self.backend.log(process, channel, offset, 65536 if offset else 8192)
            except HubError as exc:
                pane.title(f"{process} {channel}: {exc}")
            else:
                if chunk.get("reset"):
                    pane.clear()
                if chunk.get("text"):
                    pane.write(chunk["text"])
                offset = int(chunk.get("end") or 0)
                pane.title(f"{process} {channel} (l: next channel)")
            await asyncio.sleep(1.0)  # follow the log: read on once a second

    def action_log(self) -> None:
        i = _LOG_CHANNELS.index(self.log_channel)
        self.log_channel = _LOG_CHANNELS[(i + 1) % len(_LOG_CHANNELS)]
        self._show_log()

    # -- the filter ----------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self._main.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self._main.query_one("#filter", Input)
        if box.display:
            box.value = ""
            box.display = False
            self._main.query_one("#list").focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value
        self._build_list()
        self._show_status()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        if not event.value:
            event.input.display = False
        self._main.query_one("#list").focus()

    # -- actions ---------------------------------------------------------------------------

    def sync_selection(self) -> None:
        """Take the selection from the focused tree or list's cursor now: a key pressed
        right after a move must act on the row moved to, even before the move's message
        has been handled."""
        focused = self._focused()
        if isinstance(focused, DataTable):
            key = self._cursor_key()
            if key is not None:
                kind, id = key.split("|", 1)
                self._select((kind, id))
        elif isinstance(focused, Tree) and not self._tree_settling:
            node = focused.cursor_node
            if node is not None and node.data is not None:
                ref = node.data
                self._select(ref if ref[0] != "fleet" else None, from_tree=True)

    def on_key(self, event: events.Key) -> None:
        if event.key in self._APP_KEYS or not event.character or len(event.character) != 1:
            return
        if isinstance(self._focused(), Input):
            return
        self.sync_selection()
        for spec, target in self.actions_here():
            if spec.hotkey == event.character:
                event.stop()
                event.prevent_default()
                self.start_action(spec, target)
                return

    @on(Button.Pressed, "#controls Button")
    def _button(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "quit":
            self.exit()
            return
        name = (event.button.id or "").removeprefix("act-")
        for spec, target in self.actions_here():
            if button_id(spec.name) == name:
                self.start_action(spec, target)
                return

    def open_action_menu(self) -> None:
        """The Enter dialog: the actions of the selected row itself (piw-monitor's
        Master Control or Slave Control)."""
        source = self.source_of(self.selected)
        if source is None:
            return
        online = source.get("status") == "online"
        offered = [
            (spec, online)
            for spec in _specs(source)
            if self._target(spec, source, own=True) is not None
        ]
        if not offered:
            self._set_result(f"{_ref_text(self.selected)}: no actions")
            return
        e = self.entity(self.selected) or {}
        if source.get("kind") == "piwheels" and self.selected and self.selected[0] != "source":
            role = "Master" if R.is_master(e) else "Slave"
            title = f"{role} Control: {e.get('name', '')}"
        else:
            title = f"Actions: {_ref_text(self.selected)}"

        def chosen(name: str | None) -> None:
            for spec, target in self.actions_here(own=True):
                if spec.name == name:
                    self.start_action(spec, target)

        self.push_screen(ActionMenu(title, offered), chosen)

    def start_action(self, spec: ActionSpec, target: Ref | None) -> None:
        """Ask for parameters and confirmation as the spec says, then run the action."""
        if target is None:
            where = _ref_text(self.selected) if self.selected else "nothing selected"
            self._set_result(f"{short_title(spec)}: not available for {where}")
            return

        def confirmed(params: dict[str, Any], yes: bool | None) -> None:
            if yes:
                self.run_model_action(spec, target, params)
            else:
                self._set_result(f"{short_title(spec)} {_ref_text(target)}: cancelled")

        def with_params(params: dict[str, Any] | None) -> None:
            if params is None:
                self._set_result(f"{short_title(spec)} {_ref_text(target)}: cancelled")
            elif spec.confirm:
                question = f"{short_title(spec)} {_ref_text(target)}?"
                self.push_screen(
                    ConfirmScreen(question, help_text(spec)), lambda yes: confirmed(params, yes)
                )
            else:
                self.run_model_action(spec, target, params)

        if _needs_form(spec.params):
            self.push_screen(ParamsScreen(spec, _ref_text(target)), with_params)
        else:
            with_params({})

    @work(group="actions")
    async def run_model_action(self, spec: ActionSpec, target: Ref, params: dict[str, Any]) -> None:
        what = f"{short_title(spec)} {_ref_text(target)}"
        self._set_result(f"{what}: …")
        result = await self.backend.action(target[0], target[1], spec.name, params)
        if result.get("ok"):
            self._set_result(f"{what}: done{_detail(result.get('detail'))}")
        else:
            self._set_result(f"{what}: failed: {result.get('error') or 'no reason given'}")

    def _set_result(self, text: str) -> None:
        self.result = text
        self._show_status()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())


def _specs(source: Mapping[str, Any]) -> list[ActionSpec]:
    out = []
    for a in source.get("actions") or ():
        try:
            out.append(
                ActionSpec(
                    name=str(a["name"]),
                    title=str(a.get("title") or a["name"]),
                    targets=tuple(a.get("targets") or ()),
                    confirm=bool(a.get("confirm")),
                    params=tuple(
                        ParamSpec(**{**p, "choices": tuple(p.get("choices") or ())})
                        for p in a.get("params") or ()
                    ),
                    hotkey=a.get("hotkey") or None,
                    roles=tuple(str(r) for r in a.get("roles") or ()),
                )
            )
        except (KeyError, TypeError):
            continue  # an action this client cannot read is not offered
    return out


def _detail(detail: Any) -> str:
    """An action's detail, briefly: what a piwheels action sent, or a short text."""
    if isinstance(detail, Mapping) and isinstance(detail.get("sent"), list):
        return f" (sent {', '.join(str(x) for x in detail['sent'])})"
    if isinstance(detail, str) and detail and len(detail) < 80:
        return f" ({detail})"
    return ""


def _needs_form(params: Iterable[ParamSpec]) -> bool:
    return any(True for _ in params)


def _ref_text(ref: Ref | None) -> str:
    if ref is None:
        return ""
    return ref[1] if ref[0] in ("process", "node", "group") else f"{ref[0]} {ref[1]}"


def _line(text: Text, key: str, value: Any) -> None:
    if value is None or value == "":
        return
    text.append(f"{key}: ", style="bold")
    text.append(f"{value}\n")


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _size(value: Any) -> str:
    if not isinstance(value, int | float):
        return ""
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return ""


def _piwheels_stats(
    text: Text, e: Mapping[str, Any], labels: Mapping[str, str], metrics: Mapping[str, float]
) -> None:
    """piw-monitor's stats box: board, serial, OS, then the master's build figures or the
    slave's Python and clock delta."""
    _line(text, "Board", labels.get("board_revision"))
    _line(text, "Serial #", labels.get("board_serial"))
    os_text = f"{labels.get('os_name', '')} {labels.get('os_version', '')}".strip()
    _line(text, "OS", os_text)
    if R.is_master(e):
        _line(text, "Build Size", _size(metrics.get("builds_size")))
        if "builds_time" in metrics:
            _line(text, "Build Time", R.duration(metrics["builds_time"]))
        _line(text, "File Count", metrics.get("files_count"))
        for title, prefix, total_key in (
            ("Queue", "queue.", "builds_pending"),
            ("Builds/hr", "builds.", "builds_last_hour"),
        ):
            per_abi = {
                k.removeprefix(prefix): v for k, v in metrics.items() if k.startswith(prefix) and v
            }
            total = metrics.get(total_key) or sum(per_abi.values())
            shown = "  ".join(
                f"{abi} {R.bar(v, total, 6)} {_number(v)}" for abi, v in sorted(per_abi.items())
            )
            if total_key in metrics or shown:
                _line(text, title, f"{_number(total)}  {shown}".rstrip())
        if labels.get("paused") == "true":
            _line(text, "Paused", "yes")
    else:
        py = labels.get("py_version")
        platform = labels.get("platform")
        if py or platform:
            _line(text, "Python", f"{py or '?'} (on {platform or '?'})")
        skew = metrics.get("clock_skew")
        if skew is not None:
            _line(text, "Clock Delta", f"{skew:+.1f}s")
        _line(text, "Build", labels.get("task"))
    _line(text, "Alert", labels.get("alert"))
