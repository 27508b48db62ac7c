"""One flag, one meaning: across every command of `dask-platform`, a short alias stands for one
long option, and a long option has at most one short alias (the commands: docs/reference/cli.md)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
import typer
from typer.main import get_command

from dask_platform.cli import app


def _commands(group: Any, path: str = "") -> list[tuple[str, Any]]:
    # Typer's own click (typer._click): groups are the commands with subcommands.
    if hasattr(group, "commands"):
        return [
            found
            for name, sub in group.commands.items()
            for found in _commands(sub, f"{path} {name}".strip())
        ]
    return [(path, group)]


def flag_clashes(root: typer.Typer) -> list[str]:
    """Every short alias used for two long options, and every long option given two short
    aliases (or one in some commands and another in others), naming the commands."""
    long_of: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    short_of: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path, command in _commands(get_command(root)):
        for param in command.params:
            if param.param_type_name != "option":
                continue
            names = [*param.opts, *param.secondary_opts]
            longs = [n for n in names if n.startswith("--")]
            shorts = [n for n in names if not n.startswith("--")]
            for long in longs:
                short_of[long][",".join(shorts) or "(none)"].append(path)
            for short in shorts:
                long_of[short][",".join(longs)].append(path)

    def uses(meanings: dict[str, list[str]]) -> str:
        return " and ".join(f"{name} ({', '.join(paths)})" for name, paths in meanings.items())

    clashes = [
        f"{short} means {uses(meanings)}"
        for short, meanings in sorted(long_of.items())
        if len(meanings) > 1
    ]
    clashes += [
        f"{long} is {uses(shorts)}" for long, shorts in sorted(short_of.items()) if len(shorts) > 1
    ]
    return clashes


def test_every_flag_of_the_cli_means_one_thing() -> None:
    assert flag_clashes(app) == []


def test_a_short_alias_with_two_meanings_is_caught() -> None:
    # The clash this rule exists for: `-s` was --stack in `plan` and --site in `outputs`.
    bad = typer.Typer()

    @bad.command("plan")
    def plan(stack: str = typer.Option("dev", "--stack", "-s")) -> None: ...

    @bad.command("outputs")
    def outputs(site: str = typer.Option("a", "--site", "-s")) -> None: ...

    assert flag_clashes(bad) == ["-s means --stack (plan) and --site (outputs)"]


def test_a_long_option_with_two_short_aliases_is_caught() -> None:
    bad = typer.Typer()

    @bad.command("one")
    def one(site: str = typer.Option("a", "--site", "-s")) -> None: ...

    @bad.command("two")
    def two(site: str = typer.Option("a", "--site")) -> None: ...

    assert flag_clashes(bad) == ["--site is -s (one) and (none) (two)"]


@pytest.mark.parametrize(
    ("command", "option", "short"),
    [
        (["plan"], "--stack", None),
        (["config", "check"], "--stack", None),
        (["outputs"], "--site", "-s"),
        (["outputs"], "--outputs", "-o"),
        (["clusters", "list"], "--site", "-s"),
        (["clusters", "list"], "--outputs", "-o"),
    ],
)
def test_the_chosen_meanings(command: list[str], option: str, short: str | None) -> None:
    node: Any = get_command(app)
    for name in command:
        node = node.commands[name]
    (param,) = [p for p in node.params if option in p.opts]
    assert [o for o in param.opts if not o.startswith("--")] == ([short] if short else [])
