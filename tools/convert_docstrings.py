"""Rewrites docstrings for the Markdown docs site: reST roles become Markdown cross-references, example
headings become Google-style ``Examples:`` sections.

    python tools/convert_docstrings.py [--site site] [FILES...]   (default: every tracked .py file)

* ``:class:`CallbackContext``` -> ``[`CallbackContext`][CallbackContext]`` where the name resolves in the
  docstring's scope as mkdocstrings' ``scoped_crossrefs`` resolves it (griffe: members, then parents, then
  imports); otherwise ``:func:`~callbridge.adapters.to_lightning``` ->
  ``[`to_lightning`][callbridge.adapters.lightning.to_lightning]``, the path of the object's definition
  (found by importing it). A target that the built site (``--site``, its ``objects.inv``) does not document,
  or that does not resolve, becomes plain code. Lines made longer than 120 characters are wrapped.
* ``Example:`` -> ``Examples:``; ``Example, a plain loop:`` -> ``Examples:`` with ``A plain loop:`` as the
  section's first line. griffe renders an ``Examples:`` section's ``>>>`` lines as highlighted code and reads
  ``Example:`` as an admonition whose ``>>>`` lines become nested block quotes.

The rewrite is idempotent: run it again after merging branches that brought new roles.
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib
import importlib.util
import inspect
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"callbridge": "callbridge", "callbacks": "callbridge.callbacks", "adapters": "callbridge.adapters"}
ROLE = re.compile(r":(?:py:)?(class|func|meth|attr|mod|data|exc|obj):`(~?)(?:([^`<]+?)\s*<)?([\w.]+)(\(\))?>?`")
EXAMPLE_HEADING = re.compile(r"^(?P<indent>[ \t]*)Example(?P<rest>(?:,[^\n]*)?):[ \t]*$(?=\n[ \t]+>>> )", re.MULTILINE)


def inventory(site: Path) -> set[str]:
    """Every object the built site documents (mkdocstrings writes them to ``objects.inv``)."""
    data = (site / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = data.index(b"\n", header_end) + 1
    names = set()
    for line in zlib.decompress(data[header_end:]).decode().splitlines():
        name, domain_role = line.split(" ", 2)[:2]
        if domain_role.startswith("py:"):
            names.add(name)
    return names


def module_name(path: Path) -> str | None:
    relative = path.resolve().relative_to(ROOT)
    package = PACKAGES.get(relative.parts[0])
    if package is None:
        return None
    parts = list(relative.with_suffix("").parts[1:])
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def scopes(source: str) -> list[tuple[int, int, str]]:
    """(first line, last line, qualified name) of every class and function, outermost first."""
    found: list[tuple[int, int, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                found.append((child.lineno, child.end_lineno or child.lineno, name))
                visit(child, f"{name}.")

    visit(ast.parse(source), "")
    return found


def import_path(dotted: str) -> Any:
    """The object named by an absolute dotted path, or None."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except (ImportError, TypeError, ValueError):
            continue
        try:
            for attribute in parts[cut:]:
                obj = getattr(obj, attribute)
        except AttributeError:
            return None
        return obj
    return None


def canonical(obj: Any, owner: Any, name: str) -> str | None:
    """The documented path of ``obj`` (found as ``owner.name``)."""
    if inspect.ismodule(obj):
        return obj.__name__
    target = obj.fget if isinstance(obj, property) else obj
    module, qualname = getattr(target, "__module__", None), getattr(target, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
        return f"{module}.{qualname}"
    if inspect.isclass(owner):  # a plain attribute: document it under the class that defines it
        for base in owner.__mro__:
            if name in vars(base) or name in getattr(base, "__annotations__", {}):
                return f"{base.__module__}.{base.__qualname__}.{name}"
    return None


def resolve(target: str, module: Any, scope: str | None) -> str | None:
    head, _, rest = target.partition(".")
    owners: list[Any] = []
    if scope:  # innermost class first, as the name would be looked up in a method's docstring
        parts = scope.split(".")
        for cut in range(len(parts), 0, -1):
            obj = import_path(f"{module.__name__}.{'.'.join(parts[:cut])}")
            if inspect.isclass(obj):
                owners.append(obj)
    owners.append(module)
    for owner in owners:
        if head in vars(owner) or (inspect.isclass(owner) and hasattr(owner, head)):
            obj, parent, name = getattr(owner, head), owner, head
            try:
                for attribute in rest.split(".") if rest else []:
                    parent, obj, name = obj, getattr(obj, attribute), attribute
            except AttributeError:
                return None
            return canonical(obj, parent, name)
    obj = import_path(target)
    if obj is None:
        return None
    owner_path, _, name = target.rpartition(".")
    return canonical(obj, import_path(owner_path) if owner_path else None, name)


@functools.cache
def griffe_package() -> Any:
    import griffe

    os.chdir(ROOT)  # as mkdocstrings loads it: the configured path (relative, symlinks kept), then sys.path
    return griffe.load("callbridge", search_paths=["docs/_reference_src", *sys.path], try_relative_path=False)


def scoped(target: str, module: str, scope: str | None, documented: set[str]) -> bool:
    """Whether mkdocstrings' scoped cross-references resolve ``target`` in ``scope`` to a documented object."""
    package = griffe_package()
    path = ".".join(part for part in (module, scope) if part).removeprefix("callbridge").lstrip(".")
    try:
        obj = package[path] if path else package
        head, _, rest = target.partition(".")
        full = obj.resolve(head) + (f".{rest}" if rest else "")
    except Exception:
        return False
    return full in documented


def atoms(text: str) -> list[str]:
    """``text`` split at the spaces where a line may break: outside code spans and link brackets."""
    parts, current, fence, depth, i = [], "", 0, 0, 0
    while i < len(text):
        char = text[i]
        if char == "`":
            run = len(text[i:]) - len(text[i:].lstrip("`"))
            fence = run if fence == 0 else (0 if run == fence else fence)
            current, i = current + "`" * run, i + run
            continue
        if fence == 0 and char == "[":
            depth += 1
        elif fence == 0 and char == "]":
            depth = max(depth - 1, 0)
        if char == " " and fence == 0 and depth == 0:
            if current:
                parts.append(current)
            current = ""
        else:
            current += char
        i += 1
    return [*parts, current] if current else parts


def fill(text: str, first: str, rest: str, width: int = 120) -> list[str]:
    """``text`` wrapped at ``width``; the first line starts with ``first``, the others with ``rest``."""
    lines, line = [], first
    for atom in atoms(text):
        if line.strip() and len(line) + 1 + len(atom) > width:
            lines.append(line)
            line = rest + atom
        else:
            line = f"{line} {atom}" if line.strip() else line + atom
    return [*lines, line]


def indentation(line: str) -> int:
    return len(line) - len(line.lstrip())


NOT_PROSE = (">>>", "...", "* ", "- ", "|", "```", '"""', "'" * 3)


def continues(line: str, indent: int) -> bool:
    """``line`` continues a paragraph whose continuation lines are indented by ``indent``."""
    text = line.strip()
    return (
        bool(text)
        and indentation(line) == indent
        and not text.startswith(NOT_PROSE)
        and not re.fullmatch(r"[A-Z][\w ]*:", text)
    )


def rewrap(old_lines: list[str], new_lines: list[str], width: int = 120) -> list[str]:
    """Lines the rewrite made longer than ``width``, reflowed with the rest of their paragraph."""
    out, i = [], 0
    while i < len(new_lines):
        line = new_lines[i]
        if line == old_lines[i] or len(line) <= width:
            out.append(line)
            i += 1
            continue
        indent = indentation(line)
        bullet = re.match(r"\s*[*-] ", line)
        item = re.match(r"\s+\*{0,2}\w+(?: \([^)]*\))?: \S", line)
        extra = 2 if bullet else 4 if item else 0
        j = i + 1
        while not line.rstrip().endswith('"""') and j < len(new_lines) and continues(new_lines[j], indent + extra):
            if new_lines[j].rstrip().endswith('"""'):
                j += 1
                break
            j += 1
        text = " ".join(part.strip() for part in new_lines[i:j])
        out.extend(fill(text, line[:indent], " " * (indent + extra), width))
        i = j
    return out


def convert_roles(path: Path, source: str, documented: set[str]) -> str:
    name = module_name(path)
    module = None
    if name is not None:
        try:
            module = importlib.import_module(name)
        except ImportError:  # an optional extra is missing: leave the roles for a run where it is installed
            return source
    spans = scopes(source)
    line_starts = [0, *(m.end() for m in re.finditer("\n", source))]

    def scope_at(offset: int) -> str | None:
        line = next(i for i in range(len(line_starts) - 1, -1, -1) if line_starts[i] <= offset) + 1
        inside = [qual for first, last, qual in spans if first <= line <= last]
        return inside[-1] if inside else None

    def replace(match: re.Match[str]) -> str:
        _role, short, title, target, call = match.groups()
        if target.startswith(".") and module is not None:  # relative to the module's package, as in imports
            target = importlib.util.resolve_name(target, module.__package__)
            short = "~"
        shown = title or (target.rpartition(".")[2] if short else target) + (call or "")
        if module is None:
            return f"`{shown}`"
        scope = scope_at(match.start())
        if scoped(target, module.__name__, scope, documented):
            return f"[`{shown}`][{target}]"
        path_ = resolve(target, module, scope)
        if path_ is not None and path_ in documented:
            return f"[`{shown}`][{path_}]"
        return f"`{shown}`"

    return "\n".join(rewrap(source.split("\n"), ROLE.sub(replace, source).split("\n")))


def convert_example_headings(source: str) -> str:
    def replace(match: re.Match[str]) -> str:
        indent, rest = match.group("indent"), match.group("rest").lstrip(", ").strip()
        if not rest:
            return f"{indent}Examples:"
        return f"{indent}Examples:\n{indent}    {rest[0].upper()}{rest[1:]}:"

    return EXAMPLE_HEADING.sub(replace, source)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--site", type=Path, default=ROOT / "site", help="a built site (make docs) to link against")
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "torch")
    documented = inventory(args.site)
    files = args.files or [
        ROOT / name
        for name in subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    ]
    changed = 0
    for path in files:
        if path.resolve().parent == Path(__file__).resolve().parent:  # tools/ quote roles on purpose
            continue
        source = path.read_text()
        new = convert_example_headings(convert_roles(path, source, documented))
        if new != source:
            path.write_text(new)
            changed += 1
            print(f"rewrote {path.relative_to(ROOT)}")
    print(f"{changed} files rewritten", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
