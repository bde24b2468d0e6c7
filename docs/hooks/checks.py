"""MkDocs hook: fail the strict build on raw Sphinx roles.

The docstrings and pages are written for mkdocs autorefs
(``[`Name`][]`` or ``[`Name`][unihpr.full.path]``). A Sphinx role such as a
``class`` or ``func`` role is shown raw on the site, so any left in
``unihpr/`` or ``docs/`` is reported as a warning, which fails
``mkdocs build --strict`` (CI's docs step).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.checks")

# A Sphinx/reST role followed by its backquoted target, e.g. ":class:`Name`".
SPHINX_ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|attr|mod|obj|exc|data|const|ref|doc|term|math):`"
)


def find_sphinx_roles(root: Path) -> list[str]:
    """``path:line: text`` for every raw Sphinx role in ``root/unihpr`` and ``root/docs``."""
    hits = []
    for folder, pattern in (("unihpr", "*.py"), ("docs", "*.md")):
        for path in sorted((root / folder).rglob(pattern)):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if SPHINX_ROLE.search(line):
                    hits.append(f"{path.relative_to(root).as_posix()}:{n}: {line.strip()}")
    return hits


def on_pre_build(config, **kwargs) -> None:
    root = Path(config["config_file_path"]).parent
    for hit in find_sphinx_roles(root):
        log.warning("raw Sphinx role (write [`Name`][] instead): %s", hit)
