"""MkDocs hook: checks that fail the strict build (CI's docs step).

* **Raw Sphinx roles.** The docstrings and pages are written for mkdocs
  autorefs (``[`Name`][]`` or ``[`Name`][unihpr.full.path]``). A Sphinx role
  such as a ``class`` or ``func`` role is shown raw on the site, so any left in
  ``unihpr/`` or ``docs/`` is reported.
* **Objects documented twice.** A package page renders the names its
  ``__init__`` re-exports; a section for the defining submodule would render
  them again. Every heading of the API pages is resolved to the object's
  canonical path (where it is defined, read statically with griffe) and a
  path documented under two headings is reported with both.

Each finding is a warning, which ``mkdocs build --strict`` turns into a failure.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.checks")

# A Sphinx/reST role followed by its backquoted target, e.g. ":class:`Name`".
SPHINX_ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|attr|mod|obj|exc|data|const|ref|doc|term|math):`"
)
_DOC_HEADING = re.compile(r'<h[1-6] id="(unihpr(?:\.[\w]+)*)" class="doc doc-heading"')

_package = None  # the griffe tree of unihpr, loaded once per build
_headings: dict[str, list[str]] = defaultdict(list)  # canonical path -> "page#id"


def find_sphinx_roles(root: Path) -> list[str]:
    """``path:line: text`` for every raw Sphinx role in ``root/unihpr`` and ``root/docs``."""
    hits = []
    for folder, pattern in (("unihpr", "*.py"), ("docs", "*.md")):
        for path in sorted((root / folder).rglob(pattern)):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if SPHINX_ROLE.search(line):
                    hits.append(f"{path.relative_to(root).as_posix()}:{n}: {line.strip()}")
    return hits


def _canonical(identifier: str) -> str | None:
    """Where the object named ``identifier`` is defined, or None if griffe cannot tell."""
    if _package is None:
        return None
    if identifier == _package.path:
        return identifier
    try:
        return _package[identifier.split(".", 1)[1]].canonical_path
    except Exception:  # unresolvable alias, external base class, ...
        return None


def on_pre_build(config, **kwargs) -> None:
    global _package
    root = Path(config["config_file_path"]).parent
    for hit in find_sphinx_roles(root):
        log.warning("raw Sphinx role (write [`Name`][] instead): %s", hit)
    import griffe

    _package = griffe.load("unihpr", search_paths=[str(root)], resolve_aliases=True,
                           resolve_external=False)  # fmt: skip
    _headings.clear()


def on_page_content(html: str, page, **kwargs) -> str:
    for identifier in _DOC_HEADING.findall(html):
        path = _canonical(identifier)
        if path is not None:
            _headings[path].append(f"{page.file.src_uri}#{identifier}")
    return html


def on_post_build(config, **kwargs) -> None:
    for path, where in sorted(_headings.items()):
        if len(where) > 1:
            log.warning("%s is documented %d times: %s", path, len(where), ", ".join(where))
