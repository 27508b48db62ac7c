"""How config problems are reported: one line per problem, each starting with the dotted key path
of the value it concerns (``gateway.auth.type: Input should be 'simple', ... (got 'ldap')``).

:func:`format_validation_error` is the one formatter of pydantic errors: every model of the
project (stack and bootstrap config, local settings, profiles, stack outputs, site info) reports
through it, so a problem reads the same wherever it is found.

ref: https://docs.pydantic.dev/latest/errors/validation_errors/ (error types, locations, context)
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError


class StackConfigError(ValueError):
    """Every problem in a stack configuration, one line each, with its key path."""

    def __init__(self, problems: list[str], source: str = "stack config") -> None:
        self.problems = problems
        self.source = source
        super().__init__(problems_message(source, problems))


class FieldProblems(ValueError):
    """Raised by a model validator for problems of the model's own fields: each
    ``(field, problem)`` is reported at ``<model's path>.<field>`` (``field`` may itself be a
    dotted path, e.g. ``worker_cores.max``; ``""`` is the model itself). Raise it once with every
    problem found, so that all of them are reported together."""

    def __init__(self, problems: Iterable[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{f}: {p}" if f else p for f, p in self.problems))


def problems_message(source: str, problems: Sequence[str]) -> str:
    """``<source>: <n> problem(s):`` and one ``  - <problem>`` line per problem."""
    lines = "\n".join(f"  - {p}" for p in problems)
    return f"{source}: {len(problems)} problem(s):\n{lines}"


def format_validation_error(
    exc: ValidationError, model: type[BaseModel], prefix: str = ""
) -> list[str]:
    """Every error of ``exc`` (raised validating ``model``) as one ``<path>: <problem>`` line.

    ``path`` is the dotted key path (``teams[0].name``; ``prefix`` first, e.g. ``local``), with
    the tags pydantic inserts for union members left out. The problem names what is allowed:
    unknown keys list the allowed keys, a wrong union tag lists the tags, and a rejected
    scalar is echoed (``(got 'ldap')``) unless the message already does.
    """
    problems: list[str] = []
    for err in exc.errors(include_url=False):
        path, allowed = _walk(model, tuple(err["loc"]), prefix)
        kind, msg = err["type"], err["msg"]
        ctx = err.get("ctx") or {}
        if kind == "extra_forbidden":
            problems.append(
                f"{path}: unknown key"
                + (f"; allowed keys: {', '.join(allowed)}" if allowed else "")
            )
        elif kind == "missing":
            problems.append(f"{path}: required key is missing")
        elif kind in {"union_tag_invalid", "union_tag_not_found"}:
            key = _join(path, str(ctx.get("discriminator", "")).strip("'\""))
            tags = str(ctx.get("expected_tags", "")).replace("'", "")
            if kind == "union_tag_not_found" or not tags:
                tags = ", ".join(_tags(model, tuple(err["loc"])))
                problems.append(f"{key}: required key is missing; one of {tags}")
            else:
                problems.append(f"{key}: must be one of {tags} (got {ctx.get('tag')!r})")
        elif isinstance(ctx.get("error"), FieldProblems):
            problems.extend(f"{_join(path, f)}: {p}" for f, p in ctx["error"].problems)
        else:
            for lead in ("Value error, ", "Assertion failed, "):
                msg = msg.removeprefix(lead)
            value = err.get("input")
            if isinstance(value, str | int | float | bool) and "got " not in msg:
                shown = repr(value)
                msg += f" (got {shown if len(shown) <= 80 else shown[:77] + '...'})"
            problems.append(f"{path}: {msg}")
    return problems


# --------------------------------------------------------------------------- key paths


def _join(path: str, key: str) -> str:
    if not key:
        return path
    return f"{path}.{key}" if path != "(top level)" else key


def _arms(annotation: Any) -> list[Any]:
    """The alternatives of a type: union members (None left out), Annotated unwrapped."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in {typing.Union, types.UnionType}:
        return [arm for a in get_args(annotation) if a is not type(None) for arm in _arms(a)]
    return [annotation]


def _models(arms: list[Any]) -> list[type[BaseModel]]:
    return [a for a in arms if isinstance(a, type) and issubclass(a, BaseModel)]


def _is_tag(model: type[BaseModel], part: str) -> bool:
    """``part`` is ``model``'s union tag (a Literal value of one of its fields) or its name."""
    return part == model.__name__ or any(
        get_origin(f.annotation) is Literal and part in get_args(f.annotation)
        for f in model.model_fields.values()
    )


def _walk(model: type[BaseModel], loc: tuple[Any, ...], prefix: str) -> tuple[str, list[str]]:
    """The dotted path of ``loc`` (union tags dropped) and the keys allowed at its parent."""
    shown = prefix
    current: Any = model
    allowed: list[str] = []
    for part in loc:
        arms = _arms(current)
        models = _models(arms)
        if len(arms) > 1 and isinstance(part, str):
            chosen = [m for m in models if _is_tag(m, part) and part not in m.model_fields]
            if chosen:
                current = chosen[0]
                continue  # pydantic's marker for the union member, not a key
        allowed = sorted({k for m in models for k in m.model_fields})
        current = _step(arms, part)
        if isinstance(part, int):
            shown += f"[{part}]"
        else:
            shown = f"{shown}.{part}" if shown else str(part)
    return shown or "(top level)", allowed


def _step(arms: list[Any], part: Any) -> Any:
    """The type one key (or index) below a type with these alternatives."""
    for arm in arms:
        origin = get_origin(arm)
        if isinstance(arm, type) and issubclass(arm, BaseModel) and part in arm.model_fields:
            return arm.model_fields[part].annotation
        if isinstance(part, int) and origin in {list, tuple, set, frozenset, Sequence}:
            return get_args(arm)[0] if get_args(arm) else None
        if origin in {dict, Mapping}:
            return get_args(arm)[1] if get_args(arm) else None
    return None


def _tags(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The union tags allowed at ``loc`` (for a missing discriminator)."""
    current: Any = model
    for part in loc:
        current = _step(_arms(current), part)
    tags: list[str] = []
    for arm in _models(_arms(current)):
        for field in arm.model_fields.values():
            if get_origin(field.annotation) is Literal:
                tags.extend(str(v) for v in get_args(field.annotation))
                break
    return tags
