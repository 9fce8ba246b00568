"""Griffe extension for the API reference: read the package's Sphinx-flavoured Google docstrings as mkdocstrings needs.

The docstrings follow the house style of the PyTorch ecosystem, which mkdocstrings' Google parser reads differently:

- ``Example:`` (singular) opens the examples section; griffe only knows ``Examples:`` and would render the ``>>>``
  lines as nested Markdown quotes. It becomes ``Examples:``, so the doctests render as highlighted sessions.
- ``Example::`` introduces a reST literal block (code that does not run as a doctest). It becomes an
  ``Examples:`` section holding a fenced Python block.
- Sphinx roles (``:class:`~lightning_cam.GAPHead```, ``:meth:`remove```, ...) become mkdocs-autorefs
  cross-references to the object's canonical path, looked up absolutely or relative to the documented object, its
  class and its module. A role whose target is not in the package (``torch.nn.Module``) stays inline code; a
  target in the package that the reference pages do not render fails the strict build, as a broken link should.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLES = "class|func|meth|attr|mod|obj|data|exc|const"
_ROLE = re.compile(rf":(?:py:)?(?:{_ROLES}):`(?P<tilde>~?)(?P<target>[\w.]+)(?:\(\))?`")
_EXAMPLE = re.compile(r"^(?P<indent>[ \t]*)Example:[ \t]*$", re.MULTILINE)
_LITERAL_EXAMPLE = re.compile(r"^(?P<indent>[ \t]*)Example::[ \t]*$")


def _lookup(obj: griffe.Object, target: str) -> str | None:
    """Canonical path of ``target`` seen from ``obj``, or ``None`` when it is not in the loaded package."""
    collection = obj.modules_collection
    scopes = [target]
    scope: griffe.Object | None = obj
    while scope is not None:
        scopes.append(f"{scope.path}.{target}")
        scope = scope.parent
    for path in scopes:
        try:
            found = collection[path]
        except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            continue
        try:
            return found.canonical_path
        except (griffe.AliasResolutionError, griffe.CyclicAliasError):
            continue
    return None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _literal_examples(text: str) -> str:
    """Turn ``Example::`` and its indented literal block into an ``Examples:`` section with a fenced code block."""
    lines = text.splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        match = _LITERAL_EXAMPLE.match(lines[index])
        if not match:
            out.append(lines[index])
            index += 1
            continue
        indent = match["indent"]
        index += 1
        block: list[str] = []
        # The literal block: every following line that is blank or indented deeper than the ``Example::`` line.
        while index < len(lines) and (not lines[index].strip() or _indent(lines[index]) > len(indent)):
            block.append(lines[index])
            index += 1
        while block and not block[0].strip():
            block.pop(0)
        while block and not block[-1].strip():
            block.pop()
        code = [line for line in block if line.strip()]
        margin = min((_indent(line) for line in code), default=0)
        inner = indent + "    "
        out.append(f"{indent}Examples:")
        out.append(f"{inner}```python")
        out.extend(f"{inner}{line[margin:]}" if line.strip() else "" for line in block)
        out.append(f"{inner}```")
        if index < len(lines):
            out.append("")
    return "\n".join(out)


class DocstringCompat(griffe.Extension):
    """Rewrite ``Example:`` / ``Example::`` sections and Sphinx roles in every docstring of the loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Rewrite the docstrings once the whole package is loaded, so that every cross-reference can be looked up."""
        self._rewrite(pkg, seen=set())

    def _rewrite(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            text = _literal_examples(obj.docstring.value)
            text = _EXAMPLE.sub(lambda m: f"{m['indent']}Examples:", text)
            obj.docstring.value = _ROLE.sub(lambda m: self._reference(obj, m), text)
        for member in obj.members.values():
            if not member.is_alias:
                self._rewrite(member, seen)

    @staticmethod
    def _reference(obj: griffe.Object, match: re.Match[str]) -> str:
        target = match["target"]
        shown = target.rsplit(".", 1)[-1] if match["tilde"] else target
        path = _lookup(obj, target)
        return f"[`{shown}`][{path}]" if path else f"`{shown}`"
