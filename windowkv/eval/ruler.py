"""RULER-style synthetic tasks (Hsieh et al., 2024, arXiv 2404.06654), generated offline from a seed.

Task definitions, templates, answer prefixes and generation lengths follow RULER's
``scripts/data/synthetic`` and ``synthetic.yaml``; the haystack is windowkv's generated filler
(:mod:`windowkv.eval.haystack`) instead of Paul Graham essays, and the word lists are windowkv's own
(``windowkv/data/words.json``). Every task is scored with RULER's ``string_match_all``.

===================  =====================================================================
name                 RULER configuration
===================  =====================================================================
``niah_single``      essay haystack, word key, 7-digit value (``niah_single_2``)
``niah_multikey``    essay haystack, 4 keys, 1 asked (``niah_multikey_1``)
``niah_multivalue``  essay haystack, 1 key with 4 values
``niah_multiquery``  essay haystack, 4 keys, all 4 asked
``vt``               variable tracking: noise haystack, 1 chain of 4 hops, one worked example
``cwe``              common words extraction: 10 common words (30x vs 3x, 6x vs 1x below 4k tokens)
``fwe``              frequent words extraction: zeta-distributed coded words, alpha 2
===================  =====================================================================

A length is the token count of :attr:`Example.prompt` (no chat template, no answer prefix): the
filler grows until the prompt would not fit.
"""

from __future__ import annotations

import random
import string
import uuid
from typing import Any, Callable, Iterator, Sequence

from windowkv.eval.examples import Example
from windowkv.eval.haystack import count_tokens, fit_length, sentences, word_list

NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
DEPTHS = [round(100 * i / 39) for i in range(40)]  # RULER: np.linspace(0, 100, 40) rounded
NIAH_TEMPLATE = ("Some special magic {type_v} are hidden within the following text. Make sure to memorize it. "
                 "I will quiz you about the {type_v} afterwards.\n{context}\n"
                 "What are all the special magic {type_v} for {query} mentioned in the provided text?")
NIAH_PREFIX = "The special magic {type_v} for {query} mentioned in the provided text are"
VT_TEMPLATE = ("Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n"
               "{context}\nQuestion: Find all variables that are assigned the value {query} in the text above.")
VT_PREFIX = ("Answer: According to the chain(s) of variable assignment in the text above, {num_v} variables "
             "are assigned the value {query}, they are: ")
CWE_TEMPLATE = ("Below is a numbered list of words. In these words, some appear more often than others. "
                "Memorize the ones that appear most often.\n{context}\n"
                "Question: What are the {num_cw} most common words in the above list?")
CWE_PREFIX = "Answer: The top {num_cw} words that appear most often in the list are:"
FWE_TEMPLATE = ("Read the following coded text and track the frequency of each coded word. Find the three most "
                "frequently appeared coded words. {context}\nQuestion: Do not provide any explanation. Please "
                "ignore the dots '....'. What are the three most frequently appeared words in the above coded text?")
FWE_PREFIX = "Answer: According to the coded text above, the three most frequently appeared words are:"
_ESSAY = dict(haystack="essay", key_type="words", value_type="numbers")
NIAH_CONFIGS = {
    "niah_single": dict(_ESSAY, num_keys=1, num_values=1, num_queries=1),
    "niah_multikey": dict(_ESSAY, num_keys=4, num_values=1, num_queries=1),
    "niah_multivalue": dict(_ESSAY, num_keys=1, num_values=4, num_queries=1),
    "niah_multiquery": dict(_ESSAY, num_keys=4, num_values=1, num_queries=4),
}
TOKENS_TO_GENERATE = {"niah": 128, "vt": 30, "cwe": 120, "fwe": 50}


def random_value(kind: str, rng: random.Random) -> str:
    """A needle key or value: ``numbers`` (7 digits), ``words`` (adjective-noun) or ``uuids``."""
    if kind == "numbers":
        return str(rng.randint(1_000_000, 9_999_999))
    if kind == "words":
        return f"{rng.choice(word_list('adjectives'))}-{rng.choice(word_list('nouns'))}"
    if kind == "uuids":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    raise ValueError(f"unknown needle type {kind!r}; choose numbers, words or uuids")


def join_query(keys: Sequence[str]) -> str:
    return keys[0] if len(keys) == 1 else ", ".join(keys[:-1]) + ", and " + keys[-1]


def _example(task: str, length: int, seed: int, index: int, made: tuple[str, list[str], str], tokens: int,
             max_new_tokens: int, meta: dict[str, Any]) -> Example:
    prompt, answers, prefix = made
    return Example(id=f"ruler-{task}-L{length}-s{seed}-i{index}", task=f"ruler/{task}", prompt=prompt,
                   answers=answers, metric="string_match_all", max_new_tokens=max_new_tokens,
                   meta={"length": length, "seed": seed, "index": index, **meta},
                   prompt_tokens=tokens, answer_prefix=prefix, length=length, postprocess="ruler")


def _fit(make: Callable[[int], tuple[str, list[str], str]], tokenizer: Any, length: int):
    made: dict[int, tuple[str, list[str], str]] = {}

    def build(n: int) -> str:
        if n not in made:
            made[n] = make(n)
        return made[n][0]

    n, _, tokens = fit_length(build, tokenizer, length)
    return made[n], tokens


# ---------------------------------------------------------------------------- needles

def _distractors(needle: str, key_type: str, value_type: str, rng: random.Random,
                 exclude: Sequence[str]) -> Iterator[str]:
    """RULER's ``needle`` haystack: an endless stream of needles with random keys (never one of ``exclude``)."""
    while True:
        key = random_value(key_type, rng)
        if key not in exclude:
            yield needle.format(type_v=value_type, key=key, value=random_value(value_type, rng))


def niah_example(tokenizer: Any, length: int, *, task: str = "niah_single", seed: int = 0, index: int = 0,
                 haystack: str = "essay", key_type: str = "words", value_type: str = "numbers",
                 num_keys: int = 1, num_values: int = 1, num_queries: int = 1,
                 max_new_tokens: int | None = None) -> Example:
    """One RULER needle example (``haystack``: ``essay``, ``noise`` or ``needle`` distractors)."""
    if haystack not in ("essay", "noise", "needle"):
        raise ValueError(f"unknown haystack {haystack!r}; choose essay, noise or needle")
    if min(num_keys, num_values, num_queries) < 1:
        raise ValueError("num_keys, num_values and num_queries must be >= 1")
    rng = random.Random(f"ruler-{task}-{seed}-{index}-{length}")
    num_keys = max(num_keys, num_queries)
    keys: list[str] = []
    while len(keys) < num_keys:
        key = random_value(key_type, rng)
        if key not in keys:
            keys.append(key)
    needle = "One of the special magic {type_v} for {key} is: {value}."
    values = [[random_value(value_type, rng) for _ in range(num_values)] for _ in keys]
    needles = [needle.format(type_v=value_type, key=k, value=v) for k, vs in zip(keys, values, strict=True) for v in vs]
    rng.shuffle(needles)
    depths = sorted(rng.sample(DEPTHS, len(needles)) if len(needles) <= len(DEPTHS) else
                    [rng.choice(DEPTHS) for _ in needles])
    fractions = sorted(rng.random() for _ in needles)
    asked = rng.sample(range(num_keys), num_queries)
    query = join_query([keys[i] for i in asked])
    answers = [v for i in asked for v in values[i]]
    template, prefix, type_v = NIAH_TEMPLATE, NIAH_PREFIX, value_type
    if num_queries * num_values == 1:  # RULER's singular wording
        template = template.replace("Some", "A").replace("are all", "is").replace("are", "is")
        prefix, type_v = prefix.replace("are", "is"), type_v[:-1]
    pool: list[str] = []
    stream = (sentences(seed * 1000 + index) if haystack == "essay" else
              _distractors(needle, key_type, value_type, random.Random(f"ruler-distractors-{seed}-{index}"), keys))

    def make(n: int) -> tuple[str, list[str], str]:
        if haystack == "noise":
            lines = [NOISE] * n
        else:
            while len(pool) < n:
                pool.append(next(stream))
            lines = list(pool[:n])
        if haystack == "essay":
            cuts = [0, *(int(n * d / 100) for d in depths), n]
            parts = []
            for i in range(1, len(cuts)):
                parts.append(" ".join(lines[cuts[i - 1]:cuts[i]]))
                if i - 1 < len(needles):
                    parts.append(needles[i - 1])
            context = " ".join(p for p in parts if p)
        else:
            for pos, item in sorted(zip((int(f * n) for f in fractions), needles, strict=True), reverse=True):
                lines.insert(pos, item)
            context = "\n".join(lines)
        return (template.format(type_v=type_v, context=context, query=query), answers,
                prefix.format(type_v=type_v, query=query))

    made, tokens = _fit(make, tokenizer, length)
    return _example(task, length, seed, index, made, tokens, max_new_tokens or TOKENS_TO_GENERATE["niah"],
                    {"keys": [keys[i] for i in asked], "haystack": haystack, "num_needles": len(needles)})


# ---------------------------------------------------------------------------- variable tracking

def _chains(rng: random.Random, num_chains: int, num_hops: int,
            letters: int) -> tuple[list[list[str]], list[list[str]]]:
    """RULER's variable chains: names of ``letters`` capitals, ``VAR A = 12345``, ``VAR B = VAR A``, ..."""
    names: list[str] = []
    while len(names) < num_chains * (num_hops + 1):
        name = "".join(rng.choices(string.ascii_uppercase, k=letters))
        if name not in names:
            names.append(name)
    chains, groups = [], []
    for c in range(num_chains):
        group = names[c * (num_hops + 1):(c + 1) * (num_hops + 1)]
        chain = [f"VAR {group[0]} = {rng.randint(10000, 99999)}"]
        chain += [f"VAR {group[j + 1]} = VAR {group[j]} " for j in range(num_hops)]
        chains.append(chain)
        groups.append(group)
    return groups, chains


def _vt_text(rng: random.Random, noises: int, groups, chains) -> str:
    lines = [NOISE] * noises
    for chain in chains:
        positions = sorted(rng.sample(range(len(lines)), len(chain)) if len(lines) >= len(chain)
                           else [len(lines)] * len(chain))
        for j, pos in enumerate(positions):
            lines.insert(pos + j, chain[j])
    return "\n".join(lines).replace(". \n", ".\n")


def vt_example(tokenizer: Any, length: int, *, seed: int = 0, index: int = 0, num_chains: int = 1,
               num_hops: int = 4, fewshot: bool | None = None, max_new_tokens: int | None = None) -> Example:
    """RULER variable tracking: find every variable that ends up holding a value.

    Args:
        fewshot: prepend RULER's worked example (3-letter names, 8 noise lines); ``None`` does so when
            it takes at most a third of ``length``.
    """
    if num_chains < 1 or num_hops < 1:
        raise ValueError("num_chains and num_hops must be >= 1")
    rng = random.Random(f"ruler-vt-{seed}-{index}-{length}")
    groups, chains = _chains(rng, num_chains, num_hops, 5)
    value = chains[0][0].split("=")[-1].strip()
    icl_hops = min(num_hops, 10)
    icl_groups, icl_chains = _chains(rng, num_chains, icl_hops, 3)
    icl_value = icl_chains[0][0].split("=")[-1].strip()
    icl_context = _vt_text(random.Random(f"ruler-vt-icl-{seed}-{index}"), 8, icl_groups, icl_chains)
    icl = (VT_TEMPLATE.format(context=icl_context, query=icl_value) + " "
           + VT_PREFIX.format(num_v=icl_hops + 1, query=icl_value) + " ".join(icl_groups[0]) + "\n")
    use_icl = fewshot if fewshot is not None else count_tokens(tokenizer, icl) <= length // 3

    def make(n: int) -> tuple[str, list[str], str]:
        context = _vt_text(random.Random(f"ruler-vt-layout-{seed}-{index}-{length}"), n, groups, chains)
        return ((icl if use_icl else "") + VT_TEMPLATE.format(context=context, query=value), list(groups[0]),
                VT_PREFIX.format(num_v=num_hops + 1, query=value))

    made, tokens = _fit(make, tokenizer, length)
    return _example("vt", length, seed, index, made, tokens, max_new_tokens or TOKENS_TO_GENERATE["vt"],
                    {"value": value, "num_hops": num_hops, "num_chains": num_chains, "fewshot": use_icl})


# ---------------------------------------------------------------------------- word extraction

def _single_words() -> list[str]:
    return sorted(set(word_list("nouns") + word_list("adjectives") + word_list("verbs")))


def _cwe_list(rng: random.Random, num_words: int, common: int, uncommon: int, num_cw: int) -> tuple[str, list[str]]:
    pool = _single_words()
    if num_words > len(pool):
        pool = [f"{a}-{n}" for a in word_list("adjectives") for n in word_list("nouns")]
    chosen = rng.sample(pool, min(num_words, len(pool)))
    items = chosen[:num_cw] * common + chosen[num_cw:] * uncommon
    rng.shuffle(items)
    return " ".join(f"{i + 1}. {w}" for i, w in enumerate(items)), chosen[:num_cw]


def cwe_example(tokenizer: Any, length: int, *, seed: int = 0, index: int = 0, num_cw: int = 10,
                freq_cw: int = 30, freq_ucw: int = 3, fewshot: bool | None = None,
                max_new_tokens: int | None = None) -> Example:
    """RULER common words extraction; below 4096 tokens RULER's short setting (6x vs 1x, 20-word example).

    Args:
        fewshot: prepend RULER's worked example; ``None`` does so when it takes at most a third
            of ``length``.
    """
    short = length < 4096
    shot_args = (20, 3, 1) if short else (40, 10, 3)
    main_args = (6, 1) if short else (freq_cw, freq_ucw)
    shot_rng = random.Random(f"ruler-cwe-shot-{seed}-{index}")
    shot_context, shot_answer = _cwe_list(shot_rng, *shot_args, num_cw)
    shot = (CWE_TEMPLATE.format(num_cw=num_cw, context=shot_context) + " " + CWE_PREFIX.format(num_cw=num_cw)
            + " " + " ".join(f"{i + 1}. {w}" for i, w in enumerate(shot_answer)) + "\n")
    use_shot = fewshot if fewshot is not None else count_tokens(tokenizer, shot) <= length // 3

    def make(n: int) -> tuple[str, list[str], str]:
        context, answer = _cwe_list(random.Random(f"ruler-cwe-{seed}-{index}-{length}"), num_cw + n, *main_args,
                                    num_cw)
        return ((shot if use_shot else "") + CWE_TEMPLATE.format(num_cw=num_cw, context=context), answer,
                CWE_PREFIX.format(num_cw=num_cw))

    made, tokens = _fit(make, tokenizer, length)
    return _example("cwe", length, seed, index, made, tokens, max_new_tokens or TOKENS_TO_GENERATE["cwe"],
                    {"num_cw": num_cw, "short_setting": short, "fewshot": use_shot})


def zeta(alpha: float, terms: int = 1000) -> float:
    """Riemann zeta for ``alpha > 1`` (partial sum plus the Euler-Maclaurin tail; error < 1e-9)."""
    if alpha <= 1:
        raise ValueError(f"alpha must be > 1 (got {alpha})")
    head = sum(k ** -alpha for k in range(1, terms))
    return head + terms ** (1 - alpha) / (alpha - 1) + terms ** -alpha / 2


def fwe_example(tokenizer: Any, length: int, *, seed: int = 0, index: int = 0, alpha: float = 2.0,
                word_len: int = 6, vocab_size: int | None = None, max_new_tokens: int | None = None) -> Example:
    """RULER frequent words extraction: the 3 most frequent coded words (the top one is noise, '...')."""
    size = vocab_size or max(length // 50, 8)
    rng = random.Random(f"ruler-fwe-{seed}-{index}-{length}")
    vocab: set[str] = set()
    while len(vocab) < size:
        vocab.add("".join(rng.choices(string.ascii_lowercase, k=word_len)))
    words = sorted(vocab)
    rng.shuffle(words)
    words[0] = "..."
    z = zeta(alpha)

    def make(n: int) -> tuple[str, list[str], str]:
        sampled = [w for k, w in enumerate(words, start=1) for _ in range(int(n * k ** -alpha / z))]
        random.Random(f"ruler-fwe-order-{seed}-{index}").shuffle(sampled)
        return FWE_TEMPLATE.format(context=" ".join(sampled)), words[1:4], FWE_PREFIX

    made, tokens = _fit(make, tokenizer, length)
    return _example("fwe", length, seed, index, made, tokens, max_new_tokens or TOKENS_TO_GENERATE["fwe"],
                    {"alpha": alpha, "vocab_size": size})


# ---------------------------------------------------------------------------- task table

def _niah(name: str) -> Callable[..., Example]:
    def build(tokenizer: Any, length: int, **options: Any) -> Example:
        return niah_example(tokenizer, length, task=name, **{**NIAH_CONFIGS[name], **options})

    build.__name__ = f"{name}_example"
    return build


RULER_TASKS: dict[str, Callable[..., Example]] = {
    **{name: _niah(name) for name in NIAH_CONFIGS},
    "vt": vt_example,
    "cwe": cwe_example,
    "fwe": fwe_example,
}


def ruler_examples(task: str, tokenizer: Any, lengths: Sequence[int], *, samples: int = 1, seed: int = 0,
                   **options: Any) -> list[Example]:
    """``samples`` examples of RULER task ``task`` per length, lengths outermost.

    Args:
        task: a key of :data:`RULER_TASKS`.
        tokenizer: the model's tokenizer (lengths are in its tokens).
        options: task parameters, e.g. ``num_hops=2`` for ``vt`` or ``haystack="noise"`` for needles.
    """
    if task not in RULER_TASKS:
        raise KeyError(f"unknown RULER task {task!r}; known: {', '.join(RULER_TASKS)}")
    if tokenizer is None:
        raise ValueError("RULER examples need the model's tokenizer (lengths are in its tokens)")
    if samples < 1:
        raise ValueError(f"samples must be >= 1 (got {samples})")
    build = RULER_TASKS[task]
    return [build(tokenizer, int(length), seed=seed, index=i, **options) for length in lengths for i in range(samples)]


__all__ = ["RULER_TASKS", "ruler_examples", "niah_example", "vt_example", "cwe_example", "fwe_example", "zeta"]
