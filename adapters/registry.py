"""The typed registry of callback styles: one [`Style`][Style] record per foreign style.

Every part of callbridge that needs to know the styles (``to_lightning``, ``from_config``,
``callbridge inspect`` and ``verify``, the docs' mapping tables) reads this registry; nothing else
names a style. A style is one package under ``callbridge.adapters`` whose ``__init__`` builds a
[`Style`][Style] and calls [`register`][register]. Registering needs no import of the style's home library:
the callables in the record import it lazily.

Examples:
    A toy style in one file:
    >>> from callbridge.adapters.registry import Style, register, unregister, get_style
    >>> from callbridge.callbacks import Callback
    >>> class _Toy(Callback):
    ...     def __init__(self, obj):
    ...         self.obj = obj
    ...     def on_epoch_end(self, ctx):
    ...         self.obj.tick(ctx.epoch)
    >>> toy = Style(
    ...     name="toy",
    ...     summary="objects with a tick(epoch) method",
    ...     is_instance=lambda obj: False,
    ...     looks_like=lambda obj: callable(getattr(obj, "tick", None)),
    ...     adapt=lambda objs, **options: [_Toy(o) for o in objs],
    ...     hook_map={"tick": "on_train_epoch_end"},
    ... )
    >>> register(toy)
    >>> get_style("toy").hook_map["tick"]
    'on_train_epoch_end'
    >>> unregister("toy")
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The packages of the styles that ship with callbridge, imported (and so registered) on first use,
#: in detection order. A package registers its style when imported.
BUILTIN_STYLE_PACKAGES: tuple[str, ...] = (
    "callbridge.adapters.keras",
    "callbridge.adapters.hydra",
    "callbridge.adapters.warprec",
    "callbridge.adapters.hf",
)

_BUILTIN_ORDER = {package.rsplit(".", 1)[1]: index for index, package in enumerate(BUILTIN_STYLE_PACKAGES)}

#: Styles that need no adapter: unified callbacks and native Lightning callbacks.
NATIVE_STYLES: tuple[str, ...] = ("callbridge", "lightning")


@dataclass(frozen=True)
class Style:
    """Everything callbridge knows about one foreign callback style.

    Attributes:
        name: the style's name in messages, options and docs (``"keras"``).
        summary: one line for ``callbridge inspect`` and the docs.
        is_instance: ``obj`` derives from one of the style's real base classes (checked without
            importing the style's library when it is not imported yet).
        looks_like: ``obj`` follows the style's hook names and signatures (duck typing).
        adapt: ``adapt(objs, **options) -> list[Callback]``: unified callbacks that run ``objs``
            (every object of the style in one call, in registration order).
        hook_map: each hook of the style and the Lightning hook it runs from. A value starting
            with ``"-"`` means: no Lightning counterpart (the text says when, if ever, it runs).
        options: keyword options of ``to_lightning`` this style accepts (``key_map``, ``strict``).
        config_keys: keys that mark a config entry written in this style's own format (WarpRec's
            ``callback_path``/``callback_name``); empty when the style is declared with ``_target_``
            or ``class_path`` like any other object.
        config_allowed_keys: every key such an entry may hold.
        build_from_config: ``build(entry, base_dir) -> object`` for entries with ``config_keys``.
        library_packages: top-level packages of the home library (``("keras", "tf_keras")``): a hook
            defined on a class from these packages is the library's default, not an override.
        base_classes: names of the home base classes (``("Callback",)``), for the same test.
        inspect_problems: ``inspect_problems(cls) -> list[str]``: what will not work under Lightning.
        extra: the pip extra that installs the home library (``"keras"``), for messages.
        docs_page: the docs page that describes the style (``"keras.md"``).
        verify: ``verify(make, workdir, label=, epochs=) -> Report``: runs the callback ``make(dir)`` builds
            at home and under callbridge on a scripted run and compares them (``callbridge verify``; see
            `callbridge.adapters.conformance`).
        accepts_classes: the style's home framework takes callback classes as well as instances (HF's
            ``Trainer`` does): ``is_instance`` is then also asked about classes, and ``adapt`` receives them
            as given (it instantiates them).
    """

    name: str
    summary: str
    is_instance: Callable[[Any], bool]
    looks_like: Callable[[Any], bool]
    adapt: Callable[..., list[Any]]
    hook_map: Mapping[str, str]
    options: tuple[str, ...] = ()
    config_keys: tuple[str, ...] = ()
    config_allowed_keys: tuple[str, ...] = ()
    build_from_config: Callable[[Mapping[str, Any], Path], Any] | None = None
    library_packages: tuple[str, ...] = ()
    base_classes: tuple[str, ...] = ("Callback",)
    inspect_problems: Callable[[type], list[str]] | None = None
    extra: str | None = None
    docs_page: str | None = None
    verify: Callable[..., Any] | None = None
    accepts_classes: bool = False

    def __post_init__(self) -> None:
        if not self.name or not self.name.isidentifier():
            raise ValueError(f"Style.name must be an identifier, got {self.name!r}")
        if self.name in NATIVE_STYLES:
            raise ValueError(f"Style.name {self.name!r} is reserved for callbacks that need no adapter")
        for attribute in ("is_instance", "looks_like", "adapt"):
            if not callable(getattr(self, attribute)):
                raise TypeError(f"Style {self.name!r}: {attribute} must be callable")
        if self.config_keys and self.build_from_config is None:
            raise TypeError(f"Style {self.name!r}: config_keys given without build_from_config")


_REGISTRY: dict[str, Style] = {}
_LOADED = False


def register(style: Style, *, replace: bool = False) -> None:
    """Adds ``style`` to the registry (after the styles already there, in detection order).

    Raises:
        TypeError: ``style`` is not a [`Style`][Style].
        ValueError: a style of that name is registered and ``replace`` is False.
    """
    if not isinstance(style, Style):
        raise TypeError(f"register() takes a callbridge.adapters.registry.Style, got {type(style).__name__}")
    if style.name in _REGISTRY and not replace and _REGISTRY[style.name] is not style:
        raise ValueError(f"a callback style named {style.name!r} is already registered; pass replace=True")
    _REGISTRY[style.name] = style


def unregister(name: str) -> None:
    """Removes the style ``name`` (a no-op when it is not registered)."""
    _REGISTRY.pop(name, None)


def _load_builtin_styles() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for package in BUILTIN_STYLE_PACKAGES:
        try:
            importlib.import_module(package)
        except ModuleNotFoundError as error:
            if error.name != package:  # the style's own code failed to import: say so
                raise


def styles() -> list[Style]:
    """Every registered foreign style, in detection order: the built-in styles in the order of
    `BUILTIN_STYLE_PACKAGES` (whichever was imported first), then the others in registration order."""
    _load_builtin_styles()
    return sorted(_REGISTRY.values(), key=lambda style: _BUILTIN_ORDER.get(style.name, len(_BUILTIN_ORDER)))


def get_style(name: str) -> Style:
    """The registered style ``name``.

    Raises:
        ValueError: no such style; the message lists the registered ones.
    """
    _load_builtin_styles()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join([*NATIVE_STYLES, *_REGISTRY]) or "none"
        raise ValueError(f"no callback style named {name!r}; registered: {known}") from None


def style_names() -> list[str]:
    """``callbridge`` and ``lightning`` first, then every registered foreign style."""
    return [*NATIVE_STYLES, *(style.name for style in styles())]


def all_options() -> Sequence[str]:
    """Every ``to_lightning`` option any registered style accepts."""
    return sorted({option for style in styles() for option in style.options})


# -- the docs' mapping tables ----------------------------------------------------------------------
#: Markers around the generated table in a style's docs page.
DOCS_BEGIN = "<!-- hook-map: {name} (generated from the style registry; python -m callbridge.adapters.registry) -->"
DOCS_END = "<!-- /hook-map -->"


def hook_map_table(style: Style) -> str:
    """The Markdown table of ``style.hook_map``, as its docs page shows it between `DOCS_BEGIN`/`DOCS_END`.

    Examples:
        >>> toy = Style("toy", "t", lambda o: False, lambda o: False, lambda objs: [], {"tick": "on_train_epoch_end"})
        >>> print(hook_map_table(toy))
        | toy hook | runs from (Lightning) |
        |---|---|
        | `tick` | on_train_epoch_end |
    """
    rows = [f"| {style.name} hook | runs from (Lightning) |", "|---|---|"]
    for hook, where in style.hook_map.items():
        text = (where[1:].strip() if where.startswith("-") else where).replace("|", "\\|")
        rows.append(f"| `{hook}` | {text} |")
    return "\n".join(rows)


def docs_block(style: Style) -> str:
    """The generated block (markers included) for ``style``'s docs page; blank lines around the table, since
    Markdown ends an HTML comment block only at a blank line."""
    return f"{DOCS_BEGIN.format(name=style.name)}\n\n{hook_map_table(style)}\n\n{DOCS_END}"


def find_docs_block(page: str, name: str) -> tuple[int, int] | None:
    """``(start, end)`` of the generated block of style ``name`` in a page's text, or None."""
    start = page.find(DOCS_BEGIN.format(name=name))
    if start < 0:
        return None
    end = page.find(DOCS_END, start)
    return None if end < 0 else (start, end + len(DOCS_END))


def write_docs_tables(docs_dir: str | Path) -> list[Path]:
    """Rewrites the generated block in each registered style's docs page; returns the pages changed.

    Raises:
        ValueError: a page has no block yet (add the two marker lines where the table belongs).
    """
    changed = []
    for style in styles():
        if style.docs_page is None:
            continue
        path = Path(docs_dir) / style.docs_page
        page = path.read_text()
        span = find_docs_block(page, style.name)
        if span is None:
            raise ValueError(
                f"{path}: no generated hook-map block; add {DOCS_BEGIN.format(name=style.name)!r} "
                f"and {DOCS_END!r} on lines of their own where the table belongs"
            )
        updated = page[: span[0]] + docs_block(style) + page[span[1] :]
        if updated != page:
            path.write_text(updated)
            changed.append(path)
    return changed


if __name__ == "__main__":  # python -m callbridge.adapters.registry [DOCS_DIR]: regenerate the docs' tables
    import sys

    from callbridge.adapters import registry  # the module the styles register with, not this __main__ copy

    for changed_page in registry.write_docs_tables(sys.argv[1] if len(sys.argv) > 1 else "docs"):
        print(f"updated {changed_page}")
