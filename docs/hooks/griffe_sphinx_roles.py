"""griffe extension for the API reference: Sphinx roles in docstrings become Markdown code spans.

windowkv's docstrings write cross-references the Sphinx way (``:class:`windowkv.run.CompressionRun```,
``:meth:`~Policy.start_run```), which Markdown would show verbatim. This turns them into code spans
(``~`` keeps the last dotted part, as in Sphinx). Loaded by ``mkdocs.yml`` (mkdocstrings ``extensions``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|meth|func|data|mod|attr|obj|exc|const):`(~?)([^`]+)`")


def _code(match: re.Match[str]) -> str:
    target = match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"


class SphinxRoles(griffe.Extension):
    """Rewrite ``:role:`target``` into ```target``` in every docstring."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ":`" in obj.docstring.value:
            obj.docstring.value = ROLE.sub(_code, obj.docstring.value)
