"""Write the README's reference tables from the code, or check that the README still matches it.

::

    python tools/docs_tables.py --write README.md    # regenerate the tables in place
    python tools/docs_tables.py --check README.md    # exit 1, with a diff, when they differ

Three tables are generated, each between a pair of markers in the Markdown:

- ``errors``: every class of the error tree (``flaskserve.errors``) with its HTTP status,
  its code and the first paragraph of its docstring, and the codes the web edge gives
  HTTP errors outside the tree (405);
- ``settings``: every field of ``Settings``, with the nested ``limits.*`` fields, its
  ``flaskserve serve`` flag, its default and its docstring;
- ``model-settings``: every field of ``ModelSettings`` (``[models.NAME]`` or
  ``model-settings.toml``).

A class or field without a docstring is an error: the docstring is the documentation.
This script is for development only, so it lives outside the package; the test
``tests/test_docs_tables.py`` runs it on every test run, and fails when someone adds a
setting or an error without regenerating.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import inspect
import re
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel

from flaskserve import errors, settings
from flaskserve.cli import main as cli

WRITE_COMMAND = "python tools/docs_tables.py --write README.md"

_MARKER = re.compile(
    r"<!-- generated: (?P<name>[a-z-]+) -->\n(?P<body>.*?)<!-- end: (?P=name) -->", re.DOTALL
)
_ROLE = re.compile(r":[a-z]+:`~?(?:[\w.]*\.)?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


class MissingDocstring(Exception):
    """A class or field the tables list has no docstring to describe it."""


def markdown(text: str) -> str:
    """A docstring paragraph as one Markdown table cell."""
    text = _ROLE.sub(r"`\1`", text)
    text = _LITERAL.sub(r"`\1`", text)
    return " ".join(text.split()).replace("|", "\\|")


def first_paragraph(doc: str) -> str:
    return inspect.cleandoc(doc).split("\n\n")[0]


def table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def error_classes() -> list[type[errors.FlaskserveError]]:
    """The error tree in the order errors.py defines it."""
    return [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.FlaskserveError)
    ]


def edge_errors() -> list[tuple[int, str, str]]:
    """The codes the web edge gives HTTP errors no class of the tree carries (405), and their message."""
    from flaskserve.web import errors as edge

    tree_codes = {cls.code for cls in error_classes()}
    return [
        (status, code, edge._HTTP_MESSAGES.get(status, ""))
        for status, code in edge._HTTP_CODES.items()
        if code not in tree_codes
    ]


def errors_table() -> str:
    rows = []
    for order, cls in enumerate(error_classes()):
        doc = cls.__dict__.get("__doc__")
        if not doc:
            raise MissingDocstring(f"errors.{cls.__name__} has no docstring to say when it is raised")
        rows.append((cls.status, order, (str(cls.status), f"`{cls.code}`", markdown(first_paragraph(doc)))))
    for status, code, message in edge_errors():
        rows.append(
            (status, -1, (str(status), f"`{code}`", markdown(message[:1].upper() + message[1:] + ".")))
        )
    rows.sort(key=lambda row: (row[0], row[1]))
    return table(("status", "code", "when"), [row for _, _, row in rows])


def field_docstrings(model: type[BaseModel]) -> dict[str, str]:
    """The string literal under each annotated field of ``model``'s class body, by field name."""
    (body,) = ast.parse(textwrap.dedent(inspect.getsource(model))).body
    assert isinstance(body, ast.ClassDef)
    found: dict[str, str] = {}
    statements = body.body
    for statement, following in zip(statements, [*statements[1:], None], strict=True):
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
            continue
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            found[statement.target.id] = following.value.value
    return found


def toml_value(value: Any, name: str) -> str:
    """A default as it would be written in the TOML config file."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (str, Path)):
        return f'`"{value}"`'
    if isinstance(value, (list, tuple)):
        return "`[" + ", ".join(f'"{item}"' for item in value) + "]`"
    if isinstance(value, dict):
        return "`{}`" if not value else f"`{value}`"
    shown = f"`{value}`"
    if name.endswith("_bytes") and isinstance(value, int) and value >= 1024 and value % 1024 == 0:
        for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if value % size == 0:
                return f"{shown} ({value // size} {unit})"
    return shown


def serve_flags() -> dict[str, str]:
    """The ``flaskserve serve`` flag of each setting, by setting name."""
    flags: dict[str, str] = {}
    for param in cli.commands["serve"].params:
        if param.name is None:
            continue
        name = param.name.removesuffix("_flag")
        if isinstance(param, click.Argument):
            flags[name] = f"`{param.name.upper()}`"
        else:
            flags[name] = ", ".join(f"`{opt}`" for opt in param.opts)
    return flags


def settings_rows(
    model: type[BaseModel], prefix: str = "", flags: Callable[[str], str] = lambda name: "—"
) -> Iterator[tuple[str, ...]]:
    docs = field_docstrings(model)
    for name, field in model.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            yield from settings_rows(type(default), f"{prefix}{name}.", flags)
            continue
        doc = docs.get(name)
        if not doc:
            raise MissingDocstring(f"{model.__name__}.{name} has no docstring to say what it does")
        qualified = prefix + name
        yield (f"`{qualified}`", flags(qualified), toml_value(default, name), markdown(doc))


def settings_table() -> str:
    flags = serve_flags()
    rows = list(settings_rows(settings.Settings, flags=lambda name: flags.get(name, "—")))
    return table(("setting", "flag", "default", "meaning"), rows)


def model_settings_table() -> str:
    rows = [(name, default, meaning) for name, _, default, meaning in settings_rows(settings.ModelSettings)]
    return table(("setting", "default", "meaning"), rows)


GENERATORS: dict[str, Callable[[], str]] = {
    "errors": errors_table,
    "settings": settings_table,
    "model-settings": model_settings_table,
}


def render(document: str) -> str:
    """``document`` with every generated table replaced by what the code says now."""
    seen: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in GENERATORS:
            raise KeyError(f"no generator for the table '{name}'; known: {', '.join(GENERATORS)}")
        seen.add(name)
        return f"<!-- generated: {name} -->\n{GENERATORS[name]()}<!-- end: {name} -->"

    rendered = _MARKER.sub(replace, document)
    missing = set(GENERATORS) - seen
    if missing:
        raise KeyError(f"the document has no markers for: {', '.join(sorted(missing))}")
    return rendered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the tables in place")
    mode.add_argument("--check", action="store_true", help="exit 1 if the tables differ from the code")
    parser.add_argument("document", type=Path)
    args = parser.parse_args(argv)
    current = args.document.read_text(encoding="utf-8")
    expected = render(current)
    if args.write:
        if expected != current:
            args.document.write_text(expected, encoding="utf-8")
            print(f"updated the tables of {args.document}")
        return 0
    if expected == current:
        return 0
    sys.stdout.writelines(
        difflib.unified_diff(
            current.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            f"{args.document} (now)",
            f"{args.document} (from the code)",
        )
    )
    print(f"\nthe tables of {args.document} differ from the code; regenerate them: {WRITE_COMMAND}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
