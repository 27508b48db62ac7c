"""The README and docs/ as a newcomer reads them: a short README, links that resolve, and every
command shown checked against the real Makefile and the real Typer app; the cheap read-only ones
run and must exit 0.

What the docs follow (and this file enforces):

- Commands live in fenced ``console`` (lines starting with ``$ ``), ``sh``, ``bash`` or ``shell``
  blocks; a ``text`` block never hides a ``$ `` command line.
- ``make TARGET [VAR=value]``: TARGET is a target of the Makefile, VAR a variable it reads (not
  run here: ``make test`` is this suite; what ``make demo`` shows, tests/integration assert).
- ``uv run [--frozen] dask-platform ...``: parsed by the click command tree of
  ``dask_platform.cli.app`` (an unknown command or option, a missing option value fails), then
  run from the repository root (``COLUMNS=120``) unless the block is marked not-run. In a
  ``console`` block the lines after a run command are what it prints: each one (``...`` elides,
  durations such as ``5.0s`` match any) must appear in a line of its output.
  ``uv run python -m bench ...`` is parsed by ``bench.__main__.app``. A bare ``dask-platform``
  is not what a user types in a fresh checkout: it must be shown with ``uv run``.
- ``uv run pytest PATH...``: every PATH exists.
- Commands in prose (code spans starting with ``uv run`` or ``make``, and ``dask-platform``
  spans naming a command, with or without options) are checked the same way, not run.
- A block preceded by ``<!-- not-run: <reason> -->`` is checked but not run (it needs AWS, a
  running local platform, a container engine or the network). Other programs (pulumi, helm,
  kubectl, aws, git, curl) appear only in such blocks.
- No machine path (a home directory, the workspace) anywhere; a repository path in backticks
  (`` `infra/...` ``, `` `src/...` ``, ...) exists.
- A Python name of the package in backticks (`` `dask_platform.sites.SiteCatalog` ``, a module
  file `` `dask_platform/gateway_client.py` ``) or imported in an example
  (``from dask_platform.sites import MultiSiteCluster``) exists: importing the module and
  looking the name up succeeds, so a rename cannot leave the docs behind; so does an attribute
  of such an imported class used in the doc (``SiteCatalog.from_outputs``).

ref: https://diataxis.fr/ (how docs/ is organised); https://click.palletsprojects.com/en/stable/api/#click.Command.make_context
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

from dask_platform import charts
from dask_platform.cli import app

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
README_MAX_BYTES = 10 * 1024
DOCS = [README, *sorted((REPO / "docs").rglob("*.md"))]

SHELL_LANGS = {"console", "sh", "bash", "shell"}
BUILTINS = {"cd", "export", "echo", "eval"}
EXTERNAL = {"pulumi", "helm", "kubectl", "aws", "git", "curl", "sha256sum"}
NOT_RUN = re.compile(r"<!--\s*not-run:(.*?)-->")
MACHINE_PATHS = re.compile(r"(/(?:work|root|Users)/|/home/[a-z]|\.\./shared\b)")
INLINE = re.compile(
    r"(?<!`)`((?:uv run|make) [^`]+|dask-platform [a-z-]+(?: [a-z-]+)?(?: -[^`]*)?)`(?!`)"
)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
REPO_PATH = re.compile(
    r"`((?:infra|policies|helm|images|src|scripts|tests|bench|local|docs)/[^`\s<>*{}]*)`"
)
PACKAGE_NAME = re.compile(r"`(dask_platform(?:\.\w+)+)")  # a call's arguments are not part
PACKAGE_FILE = re.compile(r"`(dask_platform/[\w/.-]+\.py)`")
IMPORT = re.compile(r"^[ >.]*from (dask_platform(?:\.\w+)*) import \(?([\w, ]+)", re.MULTILINE)
GENERATED = {"policies/crossguard/venv"}  # Pulumi creates it on the pack's first use
FENCE = re.compile(r"^\s*(`{3,})\s*([\w-]*)")
RUN_TIMEOUT_S = 300


class DocError(Exception):
    """A command or link in a doc that a reader could not use as shown."""


@dataclass(frozen=True)
class Command:
    doc: str
    line: int
    text: str
    words: tuple[str, ...]
    not_run: str | None
    output: tuple[str, ...] = ()  # what a console block shows it printing


@dataclass(frozen=True)
class Block:
    line: int
    lang: str
    lines: tuple[str, ...]
    not_run: str | None


# ------------------------------------------------------------------------------ reading docs


def blocks(text: str) -> list[Block]:
    """Fenced blocks with their language and the not-run marker on the line before them."""
    found: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, lang = match.groups()
        previous = next((line for line in reversed(lines[:i]) if line.strip()), "")
        marker = NOT_RUN.search(previous)
        body = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j])
            j += 1
        reason = marker.group(1).strip() if marker else None
        if marker and not reason:
            raise DocError(f"line {i + 1}: a not-run marker must give its reason")
        found.append(Block(i + 1, lang, tuple(body), reason))
        i = j + 1
    return found


def command_lines(block: Block) -> list[tuple[int, str, tuple[str, ...]]]:
    """The command lines of a shell block, continuation lines joined, each with the output a
    console block shows after it (up to the next command line)."""
    out: list[tuple[int, str, list[str]]] = []
    pending: tuple[int, str] | None = None
    for offset, raw in enumerate(block.lines, start=block.line + 1):
        line = raw.strip()
        if pending is not None:
            start, text = pending
            text = text[:-1] + " " + line
        elif block.lang == "console":
            if not line.startswith("$ "):
                if out and line:
                    out[-1][2].append(line)
                continue
            start, text = offset, line[2:]
        else:
            if not line or line.startswith("#"):
                continue
            start, text = offset, line
        pending = (start, text) if text.endswith("\\") else None
        if pending is None:
            out.append((start, text, []))
    return [(start, text, tuple(shown)) for start, text, shown in out]


def simple_commands(text: str) -> list[list[str]]:
    """The simple commands of one shell line: split on pipes and lists, redirections dropped,
    leading VAR=value assignments dropped, ``$(...)`` substitutions checked as commands too."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    commands: list[list[str]] = []
    current: list[str] = []
    skip_next = False
    for token in tokens:
        if skip_next:
            skip_next = False
            continue
        if token in {"|", "||", "&&", ";", "&"}:
            commands.append(current)
            current = []
        elif token in {">", ">>", "<", "2>"}:
            skip_next = True
        else:
            for inner in re.findall(r"\$\((.*)\)", token):
                commands += simple_commands(inner)
            current.append(token)
    commands.append(current)
    cleaned = []
    for command in commands:
        while command and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", command[0]):
            command = command[1:]
        if command:
            cleaned.append(command)
    return cleaned


def inline_commands(text: str) -> list[tuple[int, str]]:
    """Commands in prose: code spans starting with `uv run` or `make`, and `dask-platform` spans
    naming a command (checked as `uv run dask-platform ...`; a span without options as
    `uv run dask-platform COMMAND --help`: the command must exist). Fenced blocks are left out."""
    found = []
    in_fence = False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        for span in INLINE.findall(line):
            if span.startswith(("uv ", "make ")):
                found.append((number, span))
            elif " -" in span:
                found.append((number, f"uv run {span}"))
            else:  # a command named, not shown with its arguments: it must exist
                found.append((number, f"uv run {span} --help"))
    return found


def commands_of(path: Path, text: str | None = None) -> list[Command]:
    text = path.read_text() if text is None else text
    doc = path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else path.name
    found = [
        Command(doc, line, shown, tuple(words), "shown in prose")
        for line, shown in inline_commands(text)
        for words in simple_commands(shown)
    ]
    for block in blocks(text):
        if block.lang == "text" and any(line.startswith("$ ") for line in block.lines):
            raise DocError(f"{doc}:{block.line}: a transcript with commands is a console block")
        if block.lang not in SHELL_LANGS:
            continue
        for line, shown, output in command_lines(block):
            for words in simple_commands(shown):
                found.append(Command(doc, line, shown, tuple(words), block.not_run, output))
    return found


# ------------------------------------------------------------------------------ checking them


def makefile_targets_and_variables() -> tuple[set[str], set[str]]:
    text = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z0-9_.-]+):(?!=)", text, re.MULTILINE))
    variables = set(re.findall(r"^(?:export\s+)?([A-Z_][A-Z0-9_]*)\s*[?:]?=", text, re.MULTILINE))
    return targets, variables


def parse_with(command: typer.Typer, prog: str, args: list[str]) -> str:
    """Parse ``args`` with the real click command tree; return the command path. Raises
    DocError for an unknown command, an unknown option or a missing value."""
    cmd = typer.main.get_command(command)
    path = [prog]
    rest = list(args)
    while hasattr(cmd, "commands") and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        sub = cmd.commands.get(name)
        if sub is None:
            raise DocError(f"{' '.join(path)}: no command {name!r} (one of {sorted(cmd.commands)})")
        cmd, path = sub, [*path, name]
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # --help prints the help
            cmd.make_context(" ".join(path), rest)
    except typer.Exit as done:  # --help
        if done.exit_code != 0:
            raise DocError(f"{' '.join(path)} {' '.join(rest)}: exit {done.exit_code}") from done
    except Exception as error:  # click's UsageError family, as typer vendors it
        raise DocError(f"{' '.join(path)} {' '.join(rest)}: {error}") from error
    return " ".join(path)


def check(command: Command) -> str:
    """The kind of a command once checked: make, dask-platform, bench, builtin or external."""
    words = list(command.words)
    program = words[0]
    if program == "make":
        targets, variables = makefile_targets_and_variables()
        for word in words[1:]:
            if "=" in word:
                if word.split("=", 1)[0] not in variables:
                    raise DocError(f"make: the Makefile reads no variable {word.split('=')[0]}")
            elif word not in targets:
                raise DocError(f"make: no target {word!r} in the Makefile")
        return "make"
    if program == "dask-platform":
        raise DocError("show it as a user types it in a checkout: `uv run dask-platform ...`")
    if program == "uv":
        rest = words[1:]
        if rest[:1] != ["run"]:
            raise DocError("uv: only `uv run ...` is shown (set-up is `make setup`)")
        rest = rest[1:]
        if rest[:1] == ["--frozen"]:
            rest = rest[1:]
        if rest[:1] == ["dask-platform"]:
            parse_with(app, "dask-platform", rest[1:])
            return "dask-platform"
        if rest[:3] == ["python", "-m", "bench"]:
            from bench.__main__ import app as bench_app

            parse_with(bench_app, "bench", rest[3:])
            return "bench"
        if rest[:1] == ["pytest"]:
            missing = [w for w in rest[1:] if not w.startswith("-") and not (REPO / w).exists()]
            if missing:
                raise DocError(f"pytest: no test path {', '.join(missing)}")
            return "pytest"
        raise DocError(f"uv run: not a command this project ships: {' '.join(rest)}")
    if program in BUILTINS:
        return "builtin"
    if program in EXTERNAL:
        if command.not_run is None:
            raise DocError(f"{program}: mark its block <!-- not-run: <reason> --> (it is not run)")
        repository_paths = [
            word
            for word in words[1:]
            if re.fullmatch(r"(infra|policies|helm|images|tests)/[\w./-]+", word)
        ]
        for word in repository_paths:  # the repository paths it names must exist
            if not (REPO / word).exists():
                raise DocError(f"{program}: {word} does not exist in the repository")
        return "external"
    raise DocError(f"{program}: not a command a reader can run here")


DURATION = re.compile(r"\d+(?:\.\d+)?s\b")


def output_problems(command: Command, printed: str) -> list[str]:
    """The lines a console block shows after ``command`` that its real output lacks: each
    shown line must be found in one printed line (whitespace at the ends ignored; ``...``
    elides; a duration such as ``5.0s`` matches any duration)."""
    lines = [line.strip() for line in printed.splitlines()]
    missing = []
    for shown in command.output:
        if shown == "...":
            continue
        parts = (re.escape(part) for part in DURATION.split(shown))
        pattern = re.compile(r"\d+(?:\.\d+)?s".join(parts))
        if not any(pattern.search(line) for line in lines):
            missing.append(f"{command.doc}:{command.line}: shown but not printed: {shown!r}")
    return missing


def run_shown(command: Command, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run a ``uv run ...`` command as shown, from the repository root, in the project's
    environment, in a 120-column terminal."""
    words = list(command.words[2:])
    if words[:1] == ["--frozen"]:
        words = words[1:]
    if words[0] == "dask-platform":
        argv = [str(Path(sys.executable).parent / "dask-platform"), *words[1:]]
    else:
        argv = [sys.executable, *words[1:]]
    env = {**os.environ, "COLUMNS": "120", "TMPDIR": str(tmp_path)}
    return subprocess.run(
        argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    in_fence = False
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        match = re.match(r"^#{1,6}\s+(.*)", line)
        if match and not in_fence:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            out.add(base if count == 0 else f"{base}-{count}")
    return out


def link_problems(path: Path, text: str) -> list[str]:
    problems = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            problems.append(f"link {target}: no file {file_part}")
        elif not resolved.is_relative_to(REPO):
            problems.append(f"link {target}: points outside the repository")
        elif anchor and resolved.suffix == ".md":
            headings = anchors(resolved.read_text() if resolved != path else text)
            if anchor not in headings:
                problems.append(f"link {target}: no heading #{anchor} in {file_part or 'here'}")
    return problems


def missing_name(dotted: str) -> str | None:
    """Why ``dask_platform.a.b.C`` does not resolve (the longest importable module, then
    attributes), or None when it does."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        module = ".".join(parts[:split])
        try:
            found: object = importlib.import_module(module)
        except ModuleNotFoundError as error:
            if not f"{module}.".startswith(f"{error.name}."):
                raise  # the module exists; something it imports is missing
            continue
        for number, attribute in enumerate(parts[split:], start=split):
            if not hasattr(found, attribute):
                return f"{'.'.join(parts[:number])} has no {attribute!r}"
            found = getattr(found, attribute)
        return None
    return f"no module {parts[0]}"


def package_name_problems(text: str) -> list[str]:
    names = set(PACKAGE_NAME.findall(text))
    imported = {
        name.strip(): f"{module}.{name.strip()}"
        for module, names_ in IMPORT.findall(text)
        for name in names_.split(",")
        if name.strip()
    }
    names |= set(imported.values())
    # An attribute of an imported name used in the doc (`SiteCatalog.from_outputs(...)`).
    names |= {
        f"{imported[name]}.{attribute}"
        for name, attribute in re.findall(r"\b([A-Z]\w*)\.([a-z_]\w*)", text)
        if name in imported
    }
    found = [f"no such name {name}: {why}" for name in sorted(names) if (why := missing_name(name))]
    found += [
        f"no such module file: {name}"
        for name in PACKAGE_FILE.findall(text)
        if not (REPO / "src" / name).is_file()
    ]
    return found


def problems(path: Path, text: str | None = None) -> list[str]:
    """Every problem of one doc: its commands (checked, not run), links and machine paths."""
    text = path.read_text() if text is None else text
    found = [f"machine path {m.group(0)!r}" for m in MACHINE_PATHS.finditer(text)]
    found += link_problems(path, text)
    found += [
        f"no such path in the repository: {name}"
        for name in REPO_PATH.findall(text)
        if name not in GENERATED and not (REPO / name).exists()
    ]
    found += package_name_problems(text)
    try:
        commands = commands_of(path, text)
    except DocError as error:
        return [*found, str(error)]
    for command in commands:
        try:
            check(command)
        except DocError as error:
            found.append(f"line {command.line}: {command.text}: {error}")
    return found


def _commands(doc: Path) -> list[Command]:
    try:
        return commands_of(doc)
    except DocError:  # reported by test_doc_commands_links_and_paths
        return []


ALL_COMMANDS = [command for doc in DOCS for command in _commands(doc)]


def _id(command: Command) -> str:
    return f"{command.doc}:{command.line}:{' '.join(command.words)}"


# ------------------------------------------------------------------------------ the tests


def test_readme_is_short():
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move reference into docs/"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_doc_commands_links_and_paths(doc):
    assert problems(doc) == []


def test_docs_show_commands():
    """The extraction finds the commands (a regex that matched nothing would pass anything)."""
    kinds = {check(command) for command in ALL_COMMANDS}
    assert {"make", "dask-platform", "external"} <= kinds
    shown = {" ".join(c.words[:2]) for c in ALL_COMMANDS}
    assert {"make demo", "make test"} <= shown


def test_docs_name_package_names():
    """The name extraction finds names in the docs and in their examples' imports."""
    text = "\n".join(doc.read_text() for doc in DOCS)
    assert "dask_platform.credentials.checked_environment" in PACKAGE_NAME.findall(text)
    assert ("dask_platform.sites", "MultiSiteCluster, SiteCatalog") in IMPORT.findall(text)
    assert "dask_platform/gateway_client.py" in PACKAGE_FILE.findall(text)


RUNNABLE = [c for c in ALL_COMMANDS if c.not_run is None and c.words[:2] == ("uv", "run")]


def test_some_commands_run():
    assert len(RUNNABLE) >= 3, [c.text for c in RUNNABLE]


@pytest.mark.parametrize("command", RUNNABLE, ids=_id)
def test_runnable_command_exits_0(command, tmp_path):
    """The command as shown, from the repository root, with the project's environment; what a
    console block shows it printing is what it prints."""
    result = run_shown(command, tmp_path)
    assert result.returncode == 0, (command.text, result.stdout[-3000:], result.stderr[-3000:])
    assert output_problems(command, result.stdout + result.stderr) == []


def test_every_docs_page_is_linked_from_the_readme():
    linked = {
        (REPO / target.partition("#")[0]).resolve()
        for target in LINK.findall(README.read_text())
        if not re.match(r"[a-z]+:", target)
    }
    assert [doc.relative_to(REPO).as_posix() for doc in DOCS[1:] if doc not in linked] == []


CODE_GLOBS = ["src/**/*.py", "infra/**/*.py", "infra/**/*.yaml", "tests/**/*.py", "bench/*.py",
              "policies/**/*.yaml", "images/*.toml", "helm/**/*.yaml", "Makefile"]  # fmt: skip


def test_doc_paths_named_in_code_exist():
    """Docstrings and comments that send a reader to docs/ name pages that exist."""
    named = {
        (path.relative_to(REPO).as_posix(), page)
        for pattern in CODE_GLOBS
        for path in REPO.glob(pattern)
        if path != Path(__file__).resolve() and ".venv" not in path.parts
        for page in re.findall(r"(?<![/\w.-])docs/[\w/.-]+\.md", path.read_text(errors="replace"))
    }
    assert len(named) >= 5
    assert sorted((path, page) for path, page in named if not (REPO / page).is_file()) == []


def test_chart_cache_is_filled_as_the_readme_says():
    """The README's `helm pull` lines are exactly the ones the chart pins ask for."""
    text = README.read_text()
    missing = [
        pin.pull_command('"$DASK_PLATFORM_CHART_CACHE"')
        for pin in charts.chart_pins().values()
        if pin.pull_command('"$DASK_PLATFORM_CHART_CACHE"') not in text
    ]
    assert missing == []


def test_cli_reference_names_every_command():
    text = (REPO / "docs" / "reference" / "cli.md").read_text()
    leaves: list[str] = []

    def walk(cmd: object, path: list[str]) -> None:
        subcommands = getattr(cmd, "commands", None)
        if subcommands is None:
            leaves.append(" ".join(path))
            return
        for name, sub in subcommands.items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), ["dask-platform"])
    assert len(leaves) > 10
    assert [leaf for leaf in leaves if f"`{leaf}" not in text] == []


# ------------------------------------------------------------------------------ fixtures: caught

GOOD = """# Good
See [the design](docs/explanation/design.md#decisions) and [below](#run).

## Run

```console
$ uv run dask-platform config check --stack dev
✓ Pulumi.dev.yaml: 2 team(s)
```

<!-- not-run: needs AWS -->
```bash
pulumi up --stack dev   # the deploy
uv run dask-platform outputs --outputs outputs.dev.json > /dev/null
make plan STACK=prod
```
"""

BAD = {
    "misspelled option": (
        "```bash\nuv run dask-platform plan --stak dev\n```\n",
        "No such option: --stak",
    ),
    "unknown command": (
        "```console\n$ uv run dask-platform config validate --stack dev\n```\n",
        "no command 'validate'",
    ),
    "option of another command": (
        "```sh\nuv run --frozen dask-platform outputs --stack dev\n```\n",
        "No such option: --stack",
    ),
    "placeholder eaten by the shell": (
        "<!-- not-run: AWS -->\n```sh\nuv run dask-platform verify-workers --user <you>\n```\n",
        "requires an argument",
    ),
    "bare dask-platform": (
        "```bash\ndask-platform local up\n```\n",
        "uv run dask-platform",
    ),
    "unknown make target": ("```bash\nmake deploy\n```\n", "no target 'deploy'"),
    "test file that is gone": (
        "<!-- not-run: slow -->\n```bash\nuv run pytest tests/unit/test_nothing.py -q\n```\n",
        "no test path tests/unit/test_nothing.py",
    ),
    "unknown make variable": ("```bash\nmake plan STAK=prod\n```\n", "no variable STAK"),
    "external tool not marked": ("```bash\npulumi up\n```\n", "not-run"),
    "not-run without a reason": ("<!-- not-run: -->\n```bash\nmake test\n```\n", "reason"),
    "uv sync shown": ("```bash\nuv sync --all-extras\n```\n", "make setup"),
    "a path that is not there": (
        "<!-- not-run: AWS -->\n```bash\npulumi -C infra/bootstrapp up\n```\n",
        "infra/bootstrapp does not exist",
    ),
    "transcript hidden in a text block": (
        "```text\n$ uv run dask-platform local status\n```\n",
        "console block",
    ),
    "misspelled option in prose": (
        "Run `dask-platform local up --sites central` first.\n",
        "No such option: --sites",
    ),
    "misspelled command in prose, no option": (
        "| `dask-platform clusters reaper` | list ECS clusters no client owns |\n",
        "no command 'reaper'",
    ),
    "a repository path that is gone": (
        "The program is in `infra/components/nothing.py`.\n",
        "no such path in the repository: infra/components/nothing.py",
    ),
    "machine path": ("Charts are in /home/alice/charts.\n", "machine path"),
    "broken link": ("[deploy](docs/deploy.md)\n", "no file docs/deploy.md"),
    "a package name that is gone": (
        "Checked by `dask_platform.credentials.checked_env`.\n",
        "no such name dask_platform.credentials.checked_env: "
        "dask_platform.credentials has no 'checked_env'",
    ),
    "a package module that is gone": (
        "See `dask_platform.stack_configs`.\n",
        "no such name dask_platform.stack_configs: dask_platform has no 'stack_configs'",
    ),
    "an example importing a name that is gone": (
        "```python\nfrom dask_platform.sites import MultiSiteCluster, SiteRegistry\n```\n",
        "no such name dask_platform.sites.SiteRegistry: dask_platform.sites has no 'SiteRegistry'",
    ),
    "a method of an imported name that is gone": (
        "```python\nfrom dask_platform.sites import SiteCatalog\n\n"
        "catalog = SiteCatalog.from_output_files(['outputs.json'])\n```\n",
        "no such name dask_platform.sites.SiteCatalog.from_output_files: "
        "dask_platform.sites.SiteCatalog has no 'from_output_files'",
    ),
    "a package file that is gone": (
        "The fix lives in `dask_platform/gateway_clients.py`.\n",
        "no such module file: dask_platform/gateway_clients.py",
    ),
    "broken anchor": (
        "[design](docs/explanation/design.md#no-such-heading)\n",
        "no heading #no-such-heading",
    ),
}


def test_a_good_doc_has_no_problem():
    assert problems(README, GOOD) == []
    assert [check(c) for c in commands_of(README, GOOD)] == [
        "dask-platform",
        "external",
        "dask-platform",
        "make",
    ]


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_doc_is_caught(case):
    text, expected = BAD[case]
    found = problems(README, text)
    assert len(found) == 1, found
    assert expected in found[0]


# ------------------------------------------------------------------------------ fixtures: output

SHOWN_OUTPUT = {
    # what `config check --stack dev` prints: an excerpt (`...` elides, a line may be cut short)
    "as printed": (
        "```console\n$ uv run dask-platform config check --stack dev\n...\n"
        "✓ Pulumi.dev.yaml: 2 team(s), region us-west-2\n```\n",
        [],
    ),
    "stale output": (
        "```console\n$ uv run dask-platform config check --stack dev\n"
        "✓ Pulumi.dev.yaml: 3 team(s), region us-west-2\n```\n",
        ["shown but not printed: '✓ Pulumi.dev.yaml: 3 team(s), region us-west-2'"],
    ),
}


@pytest.mark.parametrize("case", sorted(SHOWN_OUTPUT))
def test_output_shown_in_a_console_block_is_what_the_command_prints(case, tmp_path):
    text, expected = SHOWN_OUTPUT[case]
    (command,) = commands_of(README, text)
    result = run_shown(command, tmp_path)
    assert result.returncode == 0
    found = output_problems(command, result.stdout + result.stderr)
    assert [problem.split(": ", 1)[1] for problem in found] == expected


def test_a_shown_duration_matches_any_duration():
    (command,) = commands_of(README, "```console\n$ make demo\nall checks held in 22s\n```\n")
    assert command.output == ("all checks held in 22s",)
    assert output_problems(command, "  all checks held in 31s\n") == []
    assert output_problems(command, "all checks held\n") != []
