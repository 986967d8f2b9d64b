"""mkdocs hook: leave pages that other parts of the project have not written yet out of the nav.

The pages below are written alongside their features (the policy catalogue, the evaluation guide, the
measured report). Until a page exists, its nav entry is dropped and links to it become plain text, with
an info message, instead of failing ``mkdocs build --strict``. Every other nav entry and link must resolve.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.optional_pages")

OPTIONAL_PAGES = frozenset({"policies.md", "evaluation.md", "report.md"})


def _prune(items: list[Any], docs_dir: Path) -> list[Any]:
    kept = []
    for item in items:
        if isinstance(item, dict):
            item = {title: _prune(value, docs_dir) if isinstance(value, list) else value
                    for title, value in item.items()}
            missing = [v for v in item.values() if isinstance(v, str) and v in OPTIONAL_PAGES
                       and not (docs_dir / v).is_file()]
            if missing:
                log.info("optional page %s is not written yet; left out of the nav", missing[0])
                continue
            if all(isinstance(v, list) and not v for v in item.values()):
                continue
        elif isinstance(item, str) and item in OPTIONAL_PAGES and not (docs_dir / item).is_file():
            log.info("optional page %s is not written yet; left out of the nav", item)
            continue
        kept.append(item)
    return kept


def on_config(config: Any) -> Any:
    if config.get("nav"):
        config["nav"] = _prune(config["nav"], Path(config["docs_dir"]))
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    docs_dir = Path(config["docs_dir"])
    for name in sorted(OPTIONAL_PAGES):
        if (docs_dir / name).is_file():
            continue
        link = re.compile(r"\[([^\]]+)\]\((?:\.\./)*" + re.escape(name) + r"(?:#[^)]*)?\)")
        if link.search(markdown):
            log.info("%s: link to %s (not written yet) shown as text", page.file.src_path, name)
            markdown = link.sub(r"\1", markdown)
    return markdown
