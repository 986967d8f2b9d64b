"""The labelled prompt set of the task classifiers: built offline from a seed, shipped as package data.

Every prompt is an instruction template of :mod:`windowkv.classifiers.prompt_templates` filled with a
generated document: essays (windowkv's haystack grammar), reports, stories and transcripts (sentence
templates and word lists below and in ``windowkv/data/words.json``), numbered passages, key-value
records, and Python code cut from the standard library's own source files (PSF licence). Each row::

    {"id": "few_shot-07-003", "family": "few_shot", "label": "other", "split": "train",
     "template": "few_shot/07", "prompt": "..."}

Besides the hand-written templates, each family gets ``COMPOSED_PER_FAMILY`` prompts composed from a
short request (``CORES``), a layout and neutral opening/closing words. Splits are by template
(:func:`split_of`): the last ``HELD_OUT`` hand-written templates of each family make ``test``, the
``VAL_TEMPLATES`` before them and the last ``VAL_TEMPLATES`` requests of each family make ``val``, so
both measure phrasings the training split never shows. ``python -m windowkv.classifiers.prompt_set``
rebuilds ``windowkv/data/prompt_set.jsonl.gz``; see ``windowkv/data/PROMPT_SET.md``.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import math
import random
import re
import sys
import sysconfig
from pathlib import Path
from typing import Any, Callable, Iterator

from windowkv.classifiers.prompt_templates import (
    CLOSERS,
    CORES,
    EXTRA_TEMPLATES,
    FAMILY_LABELS,
    FEW_SHOT_LAYOUTS,
    HELD_OUT,
    LAYOUTS,
    OPENERS,
    TEMPLATES,
    VAL_TEMPLATES,
)
from windowkv.eval.haystack import sentences, word_list

PER_TEMPLATE = 11
COMPOSED_PER_FAMILY = 70
SPLITS = ("train", "val", "test")
NAMES = ("Ada", "Bram", "Celia", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kiri", "Lena",
         "Marco", "Nadia", "Omar", "Priya", "Quentin", "Rosa", "Sven", "Tomas", "Uma", "Viktor", "Wen", "Yara")
REPORT = (
    "The council of {city} approved {number} new {noun}s on {month} {day}.",
    "Officials in {city} said the {adj} {noun} would reopen by {month}.",
    "{name} told reporters that the {noun} project had cost {number} thousand.",
    "A survey of {number} residents found that most want a {adj} {noun} near the river.",
    "Critics argue that the plan to {verb} the {noun} ignores the needs of {city}.",
    "The {noun} committee will meet again in {month} to {verb} the budget.",
    "By {year}, the region expects to {verb} twice as many {noun}s as today.",
    "{name}, who leads the {noun} office, described the results as {adj}.",
    "Traffic near the {noun} in {city} fell by {number} percent last year.",
    "Several groups asked the mayor to {verb} the {adj} {noun} before winter.",
)
STORY = (
    "{name} walked to the {noun} at the edge of {city} and waited.",
    "It was {adj} weather when {name} finally decided to {verb} the old {noun}.",
    "\"We should {verb} it tonight,\" {name} said, holding the {adj} {noun}.",
    "Nobody in {city} remembered who had left the {noun} by the door.",
    "{name} laughed, then promised to {verb} the {noun} before dawn.",
    "The {adj} {noun} creaked as {name} climbed the stairs.",
)
FACTS = (
    ("{name} moved the {noun} market to {city} in {year}.",
     ("Where did {name} move the {noun} market?", "In which year did {name} move the {noun} market to {city}?",
      "Who moved the {noun} market to {city}?")),
    ("The {adj} {noun} of {city} was built by {name}.",
     ("Who built the {adj} {noun} of {city}?", "Name the person who built the {adj} {noun} of {city}.",
      "Which city has the {adj} {noun} built by {name}?")),
    ("{name} paid {number} coins for a {noun} in {city}.",
     ("How much did {name} pay for the {noun}?", "What did {name} buy in {city}?",
      "Tell me the price {name} paid for the {noun}.")),
    ("The {noun} festival of {city} lasts {number} days.",
     ("How long does the {noun} festival of {city} last?", "Which city holds a {noun} festival?",
      "Give the length of the {noun} festival in {city}.")),
    ("{name}'s favourite {noun} is the {adj} one near {city}.",
     ("What is {name}'s favourite {noun}?", "Where is {name}'s favourite {noun}?",
      "Identify {name}'s favourite {noun}.")),
)
HOPS = (
    (("{name} was born in {city}.", "{city} is famous for its {adj} {noun}."),
     ("What is the birthplace of {name} famous for?", "The home town of {name} is known for which {noun}?")),
    (("{name} wrote the book about the {noun}.", "The book about the {noun} was first sold in {city}."),
     ("In which city was the book by {name} first sold?", "Where was {name}'s book first sold?")),
    (("{name} trained under {name2}.", "{name2} lived in {city} for {number} years."),
     ("How long did the teacher of {name} live in {city}?", "Who taught {name}, and where did that teacher live?")),
)
SUMMARY_QUERIES = ("Summarize the whole meeting.", "What did the group decide overall?",
                   "Summarize the discussion about the {noun}.", "What were the main concerns raised?")
KINDS = {"essay": ("essay", "article", "text"), "report": ("report", "news story", "document"),
         "story": ("story", "novel chapter", "tale"), "transcript": ("meeting transcript", "conversation"),
         "code": ("Python module", "source file", "code listing")}


def _words() -> dict[str, list[str]]:
    return {k: word_list(k) for k in ("cities", "nouns", "adjectives", "verbs")}


def _slots(rng: random.Random) -> dict[str, Any]:
    w = _words()
    return {"city": rng.choice(w["cities"]), "noun": rng.choice(w["nouns"]), "adj": rng.choice(w["adjectives"]),
            "verb": rng.choice(w["verbs"]), "name": rng.choice(NAMES), "name2": rng.choice(NAMES),
            "number": rng.randint(2, 950), "year": rng.randint(1890, 2030), "day": rng.randint(1, 28),
            "month": rng.choice(("January", "March", "May", "July", "September", "November"))}


def _fill(template: str, rng: random.Random, slots: dict[str, Any] | None = None) -> str:
    values = {**_slots(rng), **(slots or {})}
    return template.format(**values)


def _prose(kind: str, rng: random.Random, chars: int) -> list[str]:
    """Sentences of an ``essay``, ``report``, ``story`` or ``transcript`` of about ``chars`` characters."""
    out: list[str] = []
    stream = sentences(rng.randrange(1 << 30)) if kind == "essay" else None
    while sum(len(s) + 1 for s in out) < chars:
        if stream is not None:
            out.append(next(stream))
        elif kind == "transcript":
            out.append(f"{rng.choice(NAMES)}: {_fill(rng.choice(REPORT + STORY), rng)}")
        else:
            out.append(_fill(rng.choice(REPORT if kind == "report" else STORY), rng))
    return out


def _join(kind: str, parts: list[str]) -> str:
    return "\n".join(parts) if kind == "transcript" else " ".join(parts)


def _insert(parts: list[str], extra: list[str], rng: random.Random) -> list[str]:
    parts = list(parts)
    for sentence in extra:
        parts.insert(rng.randint(0, len(parts)), sentence)
    return parts


@functools.lru_cache(maxsize=1)
def _stdlib_files() -> tuple[Path, ...]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return tuple(sorted(p for p in root.glob("*.py") if p.stat().st_size > 4000 and not p.name.startswith("_")))


def _code(rng: random.Random, chars: int) -> str:
    """A run of lines from a standard-library module, cut mid-way (what code completion sees)."""
    lines = _stdlib_files()[rng.randrange(len(_stdlib_files()))].read_text(encoding="utf-8").splitlines()
    start = rng.randrange(max(len(lines) - 40, 1))
    out: list[str] = []
    for line in lines[start:]:
        if sum(len(x) + 1 for x in out) > chars:
            break
        out.append(line)
    return "\n".join(out) + "\n"


def _length(rng: random.Random) -> int:
    return int(math.exp(rng.uniform(math.log(500), math.log(9000))))


def _key(rng: random.Random) -> str:
    w = _words()
    return f"{rng.choice(w['adjectives'])}-{rng.choice(w['nouns'])}"


def _doc(kind: str, rng: random.Random, chars: int) -> tuple[str, dict[str, Any]]:
    """A document of ``kind`` and the slot values its template may need (``key``, ``abstract``, ...)."""
    w, key, value = _words(), _key(rng), str(rng.randint(1_000_000, 9_999_999))
    slots: dict[str, Any] = {"key": key, "value": value, "n": rng.randint(3, 10), "word": rng.choice(w["nouns"])}
    if kind in ("needle", "passkey"):
        needle = (f"The pass key is {value}. Remember it." if kind == "passkey"
                  else rng.choice(("The special magic number for {k} is {v}.", "The code for {k} is {v}.",
                                   "Remember: {k} = {v}.")).format(k=key, v=value))
        return " ".join(_insert(_prose("essay", rng, chars), [needle], rng)), slots
    if kind in ("abstract", "passages", "duplicates"):
        n = max(3, min(30, chars // 400))
        paras = [_join(k, _prose(k, rng, chars // n)) for k in rng.choices(("essay", "report", "story"), k=n)]
        if kind == "duplicates":
            paras += rng.choices(paras, k=rng.randint(1, n))
            rng.shuffle(paras)
        slots.update(n=len(paras), abstract=rng.choice(paras).split(". ")[0] + ".")
        label = rng.choice(("Paragraph {}: ", "Passage {}:\n", "[{}] "))
        return "\n\n".join(label.format(i + 1) + p for i, p in enumerate(paras)), slots
    if kind == "kv":
        pairs = {_key(rng): str(rng.randint(10**5, 10**6)) for _ in range(max(4, chars // 40))}
        slots["key"] = rng.choice(list(pairs))
        return json.dumps(pairs, indent=rng.choice((None, 1))), slots
    if kind in ("log", "records", "vt"):
        n = max(6, chars // 45)
        keys = [_key(rng) for _ in range(n)]
        slots["key"] = rng.choice(keys)
        if kind == "vt":
            lines = [f"VAR {k.upper().replace('-', '_')} = {rng.randint(10**4, 10**5)}" for k in keys]
            noise = ["The grass is green. The sky is blue."] * n
            return "\n".join(_insert(noise, lines, rng)), slots
        fmt = "line {k}: REGISTER_CONTENT is <{v}>" if kind == "log" else "{k}: {v}"
        return "\n".join(fmt.format(k=k, v=rng.randint(10**4, 10**7)) for k in keys), slots
    if kind in ("words", "coded"):
        pool = rng.sample(w["nouns"], 40) if kind == "words" else ["".join(rng.choices("qwxzkjvy", k=4)) for _ in range(30)]
        weights = [1 / (i + 1) ** 1.2 for i in range(len(pool))]
        items = rng.choices(pool, weights=weights, k=max(20, chars // 10))
        if kind == "coded":
            return " .... ".join(items), slots
        return "\n".join(f"{i + 1}. {x}" for i, x in enumerate(items)), slots
    if kind == "text":
        kind = rng.choice(("essay", "report", "story"))
    if kind == "code":
        return _code(rng, chars), slots
    return _join(kind, _prose(kind, rng, chars)), slots


def _qa(rng: random.Random, chars: int, multi: bool) -> tuple[str, dict[str, Any]]:
    kind = rng.choice(("essay", "report", "story", "transcript", "code") if not multi else ("report",))
    base = _slots(rng)
    if multi:
        facts, questions = rng.choice(HOPS)
        doc, slots = _doc("passages", rng, chars)
        paras = doc.split("\n\n")
        for fact in facts:
            i = rng.randrange(len(paras))
            paras[i] += " " + fact.format(**base)
        doc = "\n\n".join(paras)
    elif kind == "code":
        doc, slots = _doc("code", rng, chars)
        names = re.findall(r"def (\w+)|class (\w+)", doc) or [("main", "")]
        name = "".join(rng.choice(names))
        questions = (f"What does `{name}` return?", f"Which arguments does {name} take?",
                     f"Where in the listing is {name} defined?", f"What exception can {name} raise?")
    else:
        fact, questions = rng.choice(FACTS)
        doc, slots = _join(kind, _insert(_prose(kind, rng, chars), [fact.format(**base)], rng)), {}
    question = rng.choice(questions).format(**base)
    kinds = KINDS["report" if multi else kind]
    doc_kind = rng.choice(kinds)
    return doc, {**slots, "question": question, "question_lower": question[0].lower() + question[1:],
                 "doc_kind": doc_kind, "doc_title": doc_kind.capitalize()}


TREC_TYPES = ("Location", "Person", "Number", "Date", "Entity", "Description")


def _few_shot(kind: str | None, rng: random.Random, chars: int) -> tuple[str, dict[str, Any]]:
    kind = kind or rng.choice(("trec", "trivia", "dialogue", "topic"))
    sep = rng.choice(("\n\n", "\n", "\n---\n"))

    def pair(last: bool) -> str:
        s = _slots(rng)
        if kind == "trec":
            q = rng.choice(rng.choice(FACTS)[1]).format(**s)
            return f"Question: {q}\nType:" + ("" if last else f" {rng.choice(TREC_TYPES)}")
        if kind == "trivia":
            fact, qs = rng.choice(FACTS)
            passage = " ".join(_prose("report", rng, 150) + [fact.format(**s)])
            return f"Passage: {passage}\nQuestion: {rng.choice(qs).format(**s)}\nAnswer:" + ("" if last else f" {s['city']}")
        if kind == "dialogue":
            lines = "\n".join(_prose("transcript", rng, 200))
            return f"Dialogue: {lines}\nSummary:" + ("" if last else f" {_fill(rng.choice(STORY), rng)}")
        text = _fill(rng.choice(REPORT + STORY), rng)
        return f"Text: {text}\nTopic:" + ("" if last else f" {rng.choice(_words()['nouns'])}")

    shots: list[str] = []
    while sum(len(x) for x in shots) < chars:
        shots.append(pair(False))
    return sep.join(shots), {"query": pair(True)}


def _code_completion(rng: random.Random, chars: int) -> tuple[str, dict[str, Any]]:
    if rng.random() < 0.3:  # repository context: several files, RepoBench-style
        files = [f"# Path: {rng.choice(_stdlib_files()).name}\n{_code(rng, chars // 3)}" for _ in range(3)]
        doc = "\n".join(files)
    else:
        doc = _code(rng, chars)
    lines = doc.rstrip("\n").split("\n")
    cut = len(lines) - rng.randint(0, min(3, len(lines) - 1))
    return "\n".join(lines[:cut]) + "\n", {"tail": lines[cut] + "\n" if cut < len(lines) else ""}


def _summary(rng: random.Random, chars: int) -> tuple[str, dict[str, Any]]:
    kind = rng.choice(("essay", "report", "story", "transcript", "report"))
    doc = _doc("passages", rng, chars)[0] if rng.random() < 0.2 else _join(kind, _prose(kind, rng, chars))
    doc_kind = rng.choice(KINDS[kind])
    return doc, {"doc_kind": doc_kind, "doc_title": doc_kind.capitalize(), "n": rng.randint(3, 7),
                 "summary_query": _fill(rng.choice(SUMMARY_QUERIES), rng)}


def make_prompt(family: str, template: str, rng: random.Random) -> str:
    """One prompt of ``family`` from ``template`` (a ``TEMPLATES`` entry) with a fresh document."""
    tag, body = re.match(r"(?:\[(\w+)\])?(.*)", template, flags=re.S).groups()
    chars = _length(rng)
    if family in ("single_doc_qa", "multi_doc_qa"):
        doc, slots = _qa(rng, chars, multi=family == "multi_doc_qa")
    elif family == "few_shot":
        doc, slots = _few_shot(tag, rng, chars)
    elif family == "code_completion":
        doc, slots = _code_completion(rng, chars)
    elif family == "summarisation":
        doc, slots = _summary(rng, chars)
    else:
        doc, slots = _doc(tag or "text", rng, chars)
    return body.format_map({"n": rng.randint(3, 10), **slots, "doc": doc})


def split_of(family: str, template: int, composed: bool = False) -> str:
    """The split of a template (never of a single prompt): the last ``HELD_OUT`` hand-written
    templates of a family are ``test``; the ``VAL_TEMPLATES`` before them and the last ``VAL_TEMPLATES``
    requests (``CORES``) are ``val``; the rest is ``train``. Validation thus also measures unseen phrasings."""
    if composed:
        return "val" if template >= len(CORES[family]) - VAL_TEMPLATES else "train"
    n = len(TEMPLATES[family])
    if template >= n - HELD_OUT:
        return "test"
    return "val" if template >= n - HELD_OUT - VAL_TEMPLATES else "train"


def build(seed: int = 0, per_template: int = PER_TEMPLATE) -> Iterator[dict[str, Any]]:
    """Every row of the prompt set, deterministic for one seed (and one Python standard library)."""
    rng = random.Random(f"windowkv-prompt-set-{seed}")
    for family, templates in TEMPLATES.items():
        for t, template in enumerate(templates):
            for i in range(per_template):
                if t < len(templates) - HELD_OUT:
                    rng.random()  # the draw of the first, random split: kept so the texts stay the same
                yield {"id": f"{family}-{t:02d}-{i:03d}", "family": family, "label": FAMILY_LABELS[family],
                       "split": split_of(family, t), "template": f"{family}/{t:02d}",
                       "prompt": make_prompt(family, template, rng)}
        for i in range(COMPOSED_PER_FAMILY):
            c = rng.randrange(len(CORES[family]))
            rng.random()
            split = split_of(family, c, composed=True)
            yield {"id": f"{family}-c{c:02d}-{i:03d}", "family": family, "label": FAMILY_LABELS[family],
                   "split": split, "template": f"{family}/c{c:02d}",
                   "prompt": make_prompt(family, compose(CORES[family][c], family == "few_shot", rng), rng)}


def build_extra(seed: int = 0, per_template: int = PER_TEMPLATE) -> Iterator[dict[str, Any]]:
    """Training rows of ``EXTRA_TEMPLATES`` (ids ``family-xNN-III``), from their own random stream so the
    rows of :func:`build` stay the same."""
    rng = random.Random(f"windowkv-prompt-set-extra-{seed}")
    for family, templates in EXTRA_TEMPLATES.items():
        for t, template in enumerate(templates):
            for i in range(per_template):
                yield {"id": f"{family}-x{t:02d}-{i:03d}", "family": family, "label": FAMILY_LABELS[family],
                       "split": "train", "template": f"{family}/x{t:02d}", "prompt": make_prompt(family, template, rng)}


def compose(core: str, few_shot: bool, rng: random.Random) -> str:
    """A template from a short request (``CORES``), a layout and neutral opening/closing words."""
    tag, core = re.match(r"(\[\w+\])?(.*)", core, flags=re.S).groups()
    layout = rng.choice(FEW_SHOT_LAYOUTS if few_shot else LAYOUTS)
    parts = {"{opener}": rng.choice(OPENERS), "{closer}": rng.choice(CLOSERS), "{core}": core}
    for slot, text in parts.items():
        layout = layout.replace(slot, text)
    return (tag or "") + layout


def load(split: str | None = None, path: str | Path | None = None) -> list[dict[str, Any]]:
    """Rows of the shipped prompt set (or the gzipped JSONL at ``path``), of one ``split`` if given."""
    from importlib import resources

    source = Path(path) if path else resources.files("windowkv") / "data" / "prompt_set.jsonl.gz"
    with gzip.open(io.BytesIO(source.read_bytes()), "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    if split is not None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose {', '.join(SPLITS)}")
        rows = [r for r in rows if r["split"] == split]
    return rows


def write(path: Path, seed: int = 0) -> int:
    """Write the prompt set as gzipped JSONL (reproducible bytes: no timestamp); returns the row count."""
    rows = [*build(seed), *build_extra(seed)]
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
        for row in rows:
            gz.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
    path.write_bytes(buffer.getvalue())
    return len(rows)


if __name__ == "__main__":  # pragma: no cover
    target = Path(__file__).resolve().parents[1] / "data" / "prompt_set.jsonl.gz"
    print(f"{write(target)} prompts -> {target} (Python {sys.version.split()[0]})")
