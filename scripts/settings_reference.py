"""Write docs/settings.md, the settings reference, from src/watchkeeper/config.py.

    .venv/bin/python scripts/settings_reference.py           # (re)write docs/settings.md
    .venv/bin/python scripts/settings_reference.py --check   # exit 1 if docs/settings.md is stale

Every section and key of `Settings`, with its type and allowed range, its default in each profile (what
`load_settings` really gives, profile defaults applied), its environment variable, and as description the
`#` comment written above the field in config.py: the comments are the source, so a field without one
stops this script (exit 2) with its name. `.ci/run` and tests/test_settings_reference.py run `--check`.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel, SecretStr

ROOT = Path(__file__).resolve().parents[1]
CONFIG_SOURCE = ROOT / "src" / "watchkeeper" / "config.py"
OUTPUT = ROOT / "docs" / "settings.md"

sys.path.insert(0, str(ROOT / "src"))
from watchkeeper import config  # noqa: E402  (the checkout's config.py, installed or not)

PROFILES = list(config.PROFILE_DEFAULTS)


class MissingComment(Exception):
    """A field in config.py has no comment above it to describe it."""


def comments_above(source: str) -> tuple[dict[tuple[str, str], str], dict[str, str]]:
    """The `#` lines directly above each field of each class, and above each profile of PROFILE_DEFAULTS.

    >>> comments_above("class A:\\n    # Why.\\n    x: int = 1\\n")[0]
    {('A', 'x'): 'Why.'}
    """
    lines = source.splitlines()

    def block_above(lineno: int) -> str:
        found: list[str] = []
        index = lineno - 2  # the line above, 0-based
        while index >= 0 and lines[index].strip().startswith("#"):
            found.insert(0, lines[index].strip().lstrip("#").strip())
            index -= 1
        return " ".join(found)

    fields: dict[tuple[str, str], str] = {}
    profiles: dict[str, str] = {}
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for statement in node.body:
                if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                    fields[(node.name, statement.target.id)] = block_above(statement.lineno)
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and node.target.id == "PROFILE_DEFAULTS" and isinstance(node.value, ast.Dict)):
            for key in node.value.keys:
                if isinstance(key, ast.Constant):
                    profiles[str(key.value)] = block_above(key.lineno)
    return fields, profiles


def is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _optional(annotation: Any) -> tuple[Any, bool]:
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def type_name(annotation: Any, nested: list[tuple[str, type[BaseModel]]], where: str = "") -> str:
    """How a reader writes the value: `integer`, `one of "FULL", "NORMAL"`, `list of strings`, …"""
    annotation, optional = _optional(annotation)
    origin = get_origin(annotation)
    if origin is Literal:
        name = "one of " + ", ".join(f"`{value}`" for value in get_args(annotation))
    elif origin is list:
        name = "list of " + type_name(get_args(annotation)[0], nested, where).replace("one of", "each one of")
    elif origin is dict:
        value = get_args(annotation)[1]
        if is_section(value):
            nested.append((where, value))
            name = f"map of name → entry (see \"Each entry of `{where}`\" below)"
        else:
            name = "map of name → " + type_name(value, nested, where)
    elif annotation is SecretStr:
        name = "secret string"
    else:
        name = {int: "integer", float: "number", bool: "boolean", str: "string", Path: "path"}.get(
            annotation, getattr(annotation, "__name__", str(annotation))
        )
    return name + (" or null" if optional else "")


def bounds(metadata: list[Any]) -> str:
    parts = []
    for item in metadata:
        for attribute, symbol in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            if isinstance(item, getattr(annotated_types, attribute.capitalize())):
                parts.append(f"{symbol} {getattr(item, attribute)}")
        if isinstance(item, annotated_types.MaxLen):
            parts.append(f"at most {item.max_length} entries")
    return ", ".join(parts)


def _in_units(key: str, value: Any) -> str:
    """`20971520` → ` (20 MiB)` for a size, `43200` → ` (12 h)` for a duration; else nothing."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return ""
    if key.endswith("_bytes"):
        for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
            if value >= size and value % size == 0:
                return f" ({int(value // size)} {unit})"
    if key.endswith("_seconds"):
        for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
            if value >= size and value % size == 0:
                return f" ({int(value // size)} {unit})"
    return ""


def shown(key: str, value: Any) -> str:
    text = json.dumps(value, separators=(", ", ": ")) if not isinstance(value, str) else value
    return f"`{text}`{_in_units(key, value)}"


def default_cell(path: list[str], per_profile: dict[str, dict[str, Any]]) -> str:
    """The default, or each profile's where the profiles differ: `` `true` (development) · `false` (…)``."""
    values: dict[str, list[str]] = {}
    for profile, dumped in per_profile.items():
        value: Any = dumped
        for part in path:
            value = value[part]
        if path == ["profile"]:
            value = "development"  # the profile is the choice itself: its default is development
        values.setdefault(shown(path[-1], value), []).append(profile)
    if len(values) == 1:
        return next(iter(values))
    return " · ".join(f"{text} ({', '.join(profiles)})" for text, profiles in values.items())


def environment_variable(path: list[str], annotation: Any, default: Any) -> str:
    """`WATCHKEEPER_<SECTION>__<KEY>`, or a note when a value of this type cannot come from a variable
    (found by trying the default, as comma-separated text for a list, in `load_settings`)."""
    name = config.ENV_PREFIX + "__".join(part.upper() for part in path)
    if get_origin(annotation) is dict and is_section(get_args(annotation)[1]):
        return f"`{name}__<NAME>__<KEY>` (one key of one entry)"
    if isinstance(default, list) and default:
        try:
            config.load_settings(environ={name: ",".join(str(item) for item in default)})
        except config.ConfigError:
            return f"none (a list: set `{'.'.join(path)}` in the config file)"
    variable = f"`{name}`"
    if _optional(annotation)[0] is SecretStr:
        variable += f", or `{name}_FILE` to read it from a file"
    return variable


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def section_table(
    model: type[BaseModel], path: list[str], per_profile: dict[str, dict[str, Any]],
    comments: dict[tuple[str, str], str], nested: list[tuple[str, type[BaseModel]]], top_level: bool = False,
) -> list[str]:
    rows = ["| setting | type | default | environment variable | description |", "|---|---|---|---|---|"]
    for key, field in model.model_fields.items():
        if top_level and is_section(field.annotation):
            continue
        description = comments.get((model.__name__, key), "")
        if not description:
            raise MissingComment(
                f"{CONFIG_SOURCE.relative_to(ROOT)}: {model.__name__}.{key} has no comment above it; write one "
                "(what it is for and why its default), it is the setting's description in docs/settings.md"
            )
        kind = type_name(field.annotation, nested, ".".join([*path, key]))
        limits = bounds(field.metadata)
        if limits:
            kind += f", {limits}"
        first = next(iter(per_profile.values()))
        default: Any = first
        for part in [*path, key]:
            default = default[part]
        rows.append("| " + " | ".join(_cell(cell) for cell in (
            f"`{'.'.join([*path, key])}`",
            kind,
            default_cell([*path, key], per_profile),
            environment_variable([*path, key], field.annotation, default),
            description,
        )) + " |")
    return rows


def nested_table(model: type[BaseModel], comments: dict[tuple[str, str], str]) -> list[str]:
    rows = ["| key | type | description |", "|---|---|---|"]
    for key, field in model.model_fields.items():
        description = comments.get((model.__name__, key), "")
        if not description:
            raise MissingComment(f"{CONFIG_SOURCE.relative_to(ROOT)}: {model.__name__}.{key} has no comment above it")
        kind = type_name(field.annotation, [])
        if bounds(field.metadata):
            kind += f", {bounds(field.metadata)}"
        rows.append(f"| `{key}` | {_cell(kind)} | {_cell(description)} |")
    return rows


def reference() -> str:
    """The whole of docs/settings.md."""
    comments, profile_comments = comments_above(CONFIG_SOURCE.read_text())
    per_profile = {
        profile: config.load_settings(environ={}, overrides={"profile": profile}).model_dump(mode="json")
        for profile in PROFILES
    }
    settings_model = config.Settings
    nested: list[tuple[str, type[BaseModel]]] = []
    out = [
        "# Settings reference",
        "",
        "<!-- Generated by scripts/settings_reference.py from src/watchkeeper/config.py: edit the comments there",
        "     and run `.venv/bin/python scripts/settings_reference.py`; CI fails when this file is stale. -->",
        "",
        "Settings are read from the profile's defaults, then a YAML file (`--config` or `WATCHKEEPER_CONFIG`), then",
        "`WATCHKEEPER_*` environment variables, then command-line flags. A section's key is nested in YAML",
        "(`ingest:` then `max_body_bytes: 10485760`) and joined by a double underscore in a variable",
        "(`WATCHKEEPER_INGEST__MAX_BODY_BYTES=10485760`). A variable ending in `_FILE` that is not itself a",
        "setting reads the value from that file (`WATCHKEEPER_ADMIN_PASSWORD_FILE=/run/secrets/admin`). A map",
        "or a list given in the file or the environment replaces the default one. An unknown key or a bad value",
        "stops start-up with a message naming it; `watchkeeper config check` shows the settings in effect.",
        "",
        "## Profiles",
        "",
        "`profile` chooses the defaults; where a profile changes one, the default column below shows each.",
        "",
    ]
    for profile in PROFILES:
        why = profile_comments.get(profile) or "the defaults as written."
        out.append(f"- `{profile}`: {why}")
    out += ["", "## Top level", ""]
    out += section_table(settings_model, [], per_profile, comments, nested, top_level=True)
    for key, field in settings_model.model_fields.items():
        if not is_section(field.annotation):
            continue
        model = field.annotation
        assert model is not None
        why = comments.get(("Settings", key), "")
        if not why:
            source = CONFIG_SOURCE.relative_to(ROOT)
            raise MissingComment(f"{source}: Settings.{key} (a section) has no comment above it")
        out += ["", f"## `{key}`", "", why, ""]
        out += section_table(model, [key], per_profile, comments, nested)
    for where, model in nested:
        out += ["", f"## Each entry of `{where}`", ""]
        out += nested_table(model, comments)
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from what would be written")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"default {OUTPUT.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    try:
        text = reference()
    except MissingComment as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.check:
        args.output.write_text(text)
        print(f"wrote {args.output}")
        return 0
    current = args.output.read_text() if args.output.exists() else ""
    if current == text:
        return 0
    where = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    why = "is missing" if not current else "is stale: it does not match src/watchkeeper/config.py"
    print(f"{where} {why}. Run `.venv/bin/python scripts/settings_reference.py` and commit the result.",
          file=sys.stderr)
    diff = list(difflib.unified_diff(current.splitlines(), text.splitlines(), f"{where} (committed)",
                                     f"{where} (from config.py)", lineterm=""))
    print("\n".join(diff[:60] + ([f"… {len(diff) - 60} more lines of difference"] if len(diff) > 60 else [])),
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
