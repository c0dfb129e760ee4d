"""The CLI section: every ``flywheel`` command with its arguments and help text, read
from the argparse parser the CLI itself builds (never from ``--help`` output, whose
wrapping depends on the terminal width)."""

from __future__ import annotations

import argparse

from flywheel_cli.__main__ import build_parser
from tools.docgen.markdown import code, table

__all__ = ["render_cli"]


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """``(name, help, parser)`` of each sub-command, in the order they were added."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return []


def _arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
    ]


def _usage(action: argparse.Action) -> str:
    if not action.option_strings:
        name = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
        return f"{name} [{name} ...]" if action.nargs in ("+", "*") else name
    flag = max(action.option_strings, key=len)
    if action.nargs == 0:
        return flag
    metavar = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    return f"{flag} {metavar}"


def _synopsis(path: str, parser: argparse.ArgumentParser) -> str:
    parts = [path]
    for action in _arguments(parser):
        usage = _usage(action)
        parts.append(usage if action.required or not action.option_strings else f"[{usage}]")
    return " ".join(parts)


def _explained(parser: argparse.ArgumentParser) -> str:
    notes = []
    for action in _arguments(parser):
        text = action.help or ""
        default = action.default
        if (
            action.option_strings
            and action.nargs != 0
            and default not in (None, "")
            and "default" not in text
        ):
            text = f"{text} (default {default})" if text else f"default {default}"
        if text:
            notes.append(f"{code(_usage(action).split(' ')[0])}: {text}")
    return "; ".join(notes)


def render_cli() -> str:
    parser = build_parser()
    out = []
    for group, group_help, group_parser in _subcommands(parser):
        out.append(f"**`flywheel {group}`**: {group_help}\n")
        # A group without sub-commands (``flywheel integrate``) is itself the command.
        commands = _subcommands(group_parser) or [("", group_help, group_parser)]
        rows = []
        for command, help_text, command_parser in commands:
            path = f"flywheel {group} {command}".rstrip()
            rows.append(
                [code(_synopsis(path, command_parser)), help_text, _explained(command_parser)]
            )
        out.append(table(["command", "what it does", "arguments"], rows))
    return "\n".join(out)
