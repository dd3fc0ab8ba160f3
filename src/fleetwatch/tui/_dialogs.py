"""The TUI's modal dialogs: confirm an action, fill in its parameters, pick an action
(piw-monitor's Enter dialog), and the help page.

Each is a :class:`~textual.screen.ModalScreen` whose result comes back through
``dismiss()``; every button has a hot-key, and Escape cancels.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from fleetwatch.model import ActionSpec

__all__ = [
    "ActionMenu",
    "ConfirmScreen",
    "HelpScreen",
    "ParamsScreen",
    "help_text",
    "short_title",
]


def short_title(spec: ActionSpec) -> str:
    """A button's words: the title up to its first colon ("Pause: SLEEP null - ..." is
    "Pause"); the rest is the action's help text."""
    return spec.title.split(":", 1)[0].strip() or spec.name


def help_text(spec: ActionSpec) -> str:
    return spec.title.split(":", 1)[1].strip() if ":" in spec.title else ""


class ConfirmScreen(ModalScreen[bool]):
    """ "Stop sv1:web:web?" with Yes (y) and No (n); Escape is No.

    | Key | Does |
    | --- | --- |
    | y | confirm |
    | n, escape | cancel |
    """

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, help: str = "") -> None:
        super().__init__(classes="dialog")
        self.question = question
        self.help = help

    def compose(self) -> ComposeResult:
        with Vertical(classes="box"):
            yield Label(self.question, id="question")
            if self.help:
                yield Static(self.help, classes="help")
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", id="yes", variant="error")
                yield Button("No (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class ParamsScreen(ModalScreen[dict[str, Any] | None]):
    """A form for an action's parameters (a menu where the spec suggests values)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, spec: ActionSpec, target: str) -> None:
        super().__init__(classes="dialog")
        self.spec = spec
        self.target = target

    def compose(self) -> ComposeResult:
        with Vertical(classes="box"):
            yield Label(f"{self.spec.title}: {self.target}")
            for p in self.spec.params:
                yield Label(p.title or p.name)
                if p.choices:
                    yield Select(
                        [(c, c) for c in p.choices],
                        value=str(p.default) if p.default is not None else p.choices[0],
                        allow_blank=False,
                        id=f"param-{p.name}",
                    )
                else:
                    yield Input(
                        value="" if p.default is None else str(p.default),
                        placeholder=p.type,
                        id=f"param-{p.name}",
                    )
            yield Static("", id="param-error")
            with Horizontal(classes="buttons"):
                yield Button("OK", id="ok", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def _submit(self) -> None:
        values: dict[str, Any] = {}
        for p in self.spec.params:
            widget = self.query_one(f"#param-{p.name}")
            raw = widget.value if isinstance(widget, Select | Input) else None
            text = "" if raw is None or raw is Select.BLANK else str(raw)
            if text == "":
                if p.required and p.default is None:
                    self.query_one("#param-error", Static).update(f"{p.name} is needed")
                    return
                continue
            if p.type == "integer":
                try:
                    values[p.name] = int(text)
                except ValueError:
                    self.query_one("#param-error", Static).update(f"{p.name}: not a number")
                    return
            elif p.type == "boolean":
                values[p.name] = text.lower() in ("1", "true", "yes", "y")
            else:
                values[p.name] = text
        self.dismiss(values)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ActionMenu(ModalScreen[str | None]):
    """The actions of the selected row, as piw-monitor's Enter dialog offers them.

    Each entry is ``Title (hot-key)``; those that do not apply are disabled.
    """

    BINDINGS = [Binding("escape,c", "cancel", "Cancel")]

    def __init__(self, title: str, actions: list[tuple[ActionSpec, bool]]) -> None:
        super().__init__(classes="dialog")
        self.title_text = title
        self.actions = actions

    def compose(self) -> ComposeResult:
        with Vertical(classes="box"):
            yield Label(self.title_text, id="menu-title")
            yield OptionList(
                *(
                    Option(_menu_entry(spec), id=spec.name, disabled=not usable)
                    for spec, usable in self.actions
                ),
                id="action-menu",
            )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def on_key(self, event: Any) -> None:
        for spec, usable in self.actions:
            if usable and spec.hotkey and event.character == spec.hotkey:
                event.stop()
                self.dismiss(spec.name)
                return

    def action_cancel(self) -> None:
        self.dismiss(None)


def _menu_entry(spec: ActionSpec) -> Text:
    text = Text(short_title(spec), style="bold")
    if spec.hotkey:
        text.append(f" ({spec.hotkey})")
    if help_text(spec):
        text.append(f"\n  {help_text(spec)}", style="dim")
    return text


HELP = """\
[b]fleetwatch tui[/b]

Up/Down, Home/End   move in the tree or the list
Tab / Shift+Tab     move between the tree, the list and the controls
Enter               the actions of the selected row
/                   filter the list (e.g. state:running group:web); Escape clears it
l                   show or hide the log pane (a supervisord process)
q                   quit (the watched systems are unaffected)

Hot-keys of the selected row's actions are in the control bar,
in brackets. Actions marked as disruptive ask first.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,h,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="box"):
            yield Static(HELP, id="help-text")
            yield Button("Close", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
