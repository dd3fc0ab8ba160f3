"""The TUI's own widgets: the stats box with its history graphs, the control bar, the
log pane. They only draw what the app hands them; the app decides what that is."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, Log, Sparkline, Static

from fleetwatch.model import ActionSpec

__all__ = ["ControlBar", "GraphData", "LogPane", "StatsBox", "button_id"]

GraphData = tuple[str, Sequence[float], str]
"""A graph: its title, its samples (oldest first), and the text of its last value."""


class StatsBox(Vertical):
    """Facts about the selected row, and small history graphs (Textual's Sparkline)."""

    def compose(self) -> ComposeResult:
        yield Static("", id="stats-text")
        yield Horizontal(id="graphs")

    _text: Text | None = None

    def show(self, text: Text, graphs: Sequence[GraphData]) -> None:
        if text != self._text:  # an update lays the screen out again: only on a change
            self._text = text
            # A fixed height (app.tcss): no new layout of the screen for new text.
            self.query_one("#stats-text", Static).update(text, layout=False)
        box = self.query_one("#graphs", Horizontal)
        titles = [g[0] for g in graphs]
        current = [child for child in box.children if isinstance(child, _Graph)]
        if titles != [g.name for g in current]:
            box.remove_children()
            current = [_Graph(title) for title in titles]
            box.mount_all(current)
        for widget, (_, samples, last) in zip(current, graphs, strict=True):
            widget.fill(samples, last)


class _Graph(Vertical):
    """One titled Sparkline of the stats box."""

    def __init__(self, title: str) -> None:
        super().__init__(name=title, classes="graph")
        self.title = Label(title, classes="graph-title")
        self.line = Sparkline([0.0], classes="graph-line")
        self._title = ""

    def compose(self) -> ComposeResult:
        yield self.title
        yield self.line

    def fill(self, samples: Sequence[float], last: str) -> None:
        title = f"{self.name} {last}".rstrip()
        if title != self._title:
            self._title = title
            self.title.update(title, layout=False)
        data = list(samples) or [0.0]
        if data != self.line.data:
            self.line.data = data


class ControlBar(Horizontal):
    """One button per action of the selected row's source, drawn from ``source.actions``.

    A button is disabled when its action does not apply to the selection (or its source
    is not online); its label carries the hot-key. The last button quits the monitor.
    """

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self._names: list[str] = []

    def compose(self) -> ComposeResult:
        yield Button("Quit (q)", id="quit", classes="control")

    def show(self, actions: Sequence[tuple[ActionSpec, bool, str]]) -> None:
        """``actions``: each spec, whether it applies, and what it would act on."""
        names = [spec.name for spec, _, _ in actions]
        if names != self._names:
            self._names = names
            for old in self.query(".action"):
                old.remove()
            self.mount_all(
                (
                    Button(_label(spec), id=f"act-{button_id(spec.name)}", classes="control action")
                    for spec, _, _ in actions
                ),
                before=self.query_one("#quit"),
            )
            self.call_after_refresh(self._states, actions)
        else:
            self._states(actions)

    def _states(self, actions: Sequence[tuple[ActionSpec, bool, str]]) -> None:
        for spec, usable, target in actions:
            for button in self.query(f"#act-{button_id(spec.name)}").results(Button):
                button.disabled = not usable
                button.tooltip = f"{target}: {spec.title}" if usable else spec.title


def button_id(name: str) -> str:
    """An action's name as a widget id (ids allow letters, digits, ``_`` and ``-``)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def _label(spec: ActionSpec) -> str:
    title = spec.title.split(":", 1)[0].strip() or spec.name
    return f"{title} ({spec.hotkey})" if spec.hotkey else title


class LogPane(Vertical):
    """The tail of a supervisord process's log, followed while it is shown."""

    def compose(self) -> ComposeResult:
        yield Label("", id="log-title")
        yield Log(id="log", max_lines=2000, auto_scroll=True)

    def title(self, text: str) -> None:
        self.query_one("#log-title", Label).update(text)

    def clear(self) -> None:
        self.query_one("#log", Log).clear()

    def write(self, text: str) -> None:
        self.query_one("#log", Log).write(text)

    @property
    def text(self) -> str:
        return "\n".join(self.query_one("#log", Log).lines)
