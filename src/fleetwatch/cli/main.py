"""The ``fleetwatch`` command's entry point.

``fleetwatch version`` and ``fleetwatch --version`` are answered here, before Typer is
imported (~40 ms for the whole run). Every other command line goes to the Typer app in
:mod:`fleetwatch.cli.commands`, through :func:`command`.

:func:`command` builds the app's Click command once and gives its plain parameters
(``str``, ``int``, ``float``, ``list[str]``...) a converter of their own instead of
Typer's: Typer builds a pydantic ``TypeAdapter`` for every parameter it converts, and
importing pydantic and building the adapters costs ~0.1-0.2 s, more than all the rest
of a ``fleetwatch status``. Parameters with anything more (bounds, paths, choices, a
custom parser) keep Typer's conversion. This leans on one private hook of Typer's
(``_TyperParameter._runtime_param``, typer 0.29); if it is not there, nothing is
changed and commands are only slower (``tests/unit/test_cli_targets.py`` says so).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from fleetwatch import __version__

if TYPE_CHECKING:
    from typer._click import Command

__all__ = ["command", "main"]

_VERSION_ARGS = (["version"], ["--version"])


def main() -> None:
    if sys.argv[1:] in _VERSION_ARGS:
        sys.stdout.write(f"{__version__}\n")
        return
    command(sys.argv[1:]).main(prog_name="fleetwatch")


def command(args: list[str] | None = None) -> Command:
    """The ``fleetwatch`` Click command, with the light converters (a new one per call).

    Given the command line ``args`` whose first word names a command, only that command
    is built (Typer inspects every command's signature to build one, ~1 ms each): the
    same app, copied with one command in its list; ``app`` itself is left as it is.
    """
    import copy

    import typer.main

    from fleetwatch.cli.commands import app

    name = next((a for a in args or () if not a.startswith("-")), None)
    chosen = [c for c in app.registered_commands if _name_of(c) == name]
    groups = [g for g in app.registered_groups if _group_name(g) == name]
    if chosen or groups:
        lean = copy.copy(app)
        lean.registered_commands = chosen
        lean.registered_groups = groups
        cmd = typer.main.get_command(lean)
    else:
        cmd = typer.main.get_command(app)
    _light_conversions(cmd)
    return cmd


def _name_of(info: Any) -> str | None:
    if info.name:
        return str(info.name)
    callback = info.callback
    return callback.__name__.lower().replace("_", "-") if callback is not None else None


def _group_name(info: Any) -> str | None:
    """A sub-app's name (``fleetwatch token ...``), as Typer gives it."""
    if info.name:
        return str(info.name)
    sub = info.typer_instance
    return str(sub.info.name) if sub is not None and sub.info.name else None


def _light_conversions(cmd: Any) -> None:
    try:
        from typer._click import Context
        from typer._click.exceptions import BadParameter
        from typer._coercion import RuntimeParam
    except ImportError:  # another Typer: keep its own conversions
        return
    import contextlib
    from dataclasses import dataclass

    def boolean(value: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "t", "yes", "y", "on"):
            return True
        if text in ("0", "false", "f", "no", "n", "off"):
            return False
        raise ValueError(value)

    convert_of: dict[Any, Any] = {str: str, int: int, float: float, bool: boolean}
    names = {int: "integer", float: "number", str: "text", bool: "boolean"}

    @dataclass(frozen=True)
    class Plain(RuntimeParam):
        """Converts each command-line string with ``convert`` (a list item by item)."""

        convert: Any = str
        many: bool = False

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if self.many:
                return [self._one(v, param, ctx) for v in value]
            return self._one(value, param, ctx)

        def _one(self, value: Any, param: Any, ctx: Any) -> Any:
            if type(value) is self.convert:
                return value
            try:
                return self.convert(value)
            except (TypeError, ValueError):
                what = names.get(self.convert, "value")
                raise BadParameter(
                    f"{value!r} is not a valid {what}.", ctx=ctx, param=param
                ) from None

    def plain(param: Any) -> Any:
        desc = getattr(param, "type_descriptor", None)
        info = getattr(desc, "parameter_info", None)
        if desc is None or info is None or not hasattr(param, "_runtime_param"):
            return None
        if any(getattr(info, k, None) is not None for k in ("min", "max", "parser", "click_type")):
            return None
        annotation = desc.annotation
        many = getattr(annotation, "__origin__", None) is list
        if many:
            (annotation,) = getattr(annotation, "__args__", (None,))
        convert = convert_of.get(annotation)
        if convert is None or desc.is_choice or desc.is_file or desc.is_path:
            return None
        return Plain(parameter_info=info, annotation=desc.annotation, convert=convert, many=many)

    stack = [cmd]
    while stack:
        c = stack.pop()
        stack.extend(getattr(c, "commands", {}).values())
        params = list(c.params)
        with contextlib.suppress(Exception):  # --help, made when first asked for
            params.append(c.get_help_option(Context(c)))
        for param in params:
            light = plain(param)
            if light is not None:
                param._runtime_param = light
