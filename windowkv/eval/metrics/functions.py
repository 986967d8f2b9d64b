"""The built-in metric functions: scores of one prediction against its gold answers, each in ``[0, 1]``.

Every entry of :data:`METRICS` is called as ``METRICS[name](prediction, answers, **context)`` and
returns a float. Per-answer metrics take the **max over the answers**, as LongBench does;
RULER's ``string_match_all`` is the fraction of answers found. ``context`` carries task data some
metrics need (``all_classes`` for ``classification_score``); the others ignore it.

Sources and deliberate choices:

- ``needle_exact``: the gold string appears in the prediction (case-insensitive) as a whole token:
  a gold answer that starts (ends) with a digit must not have a digit just before (after) it, so
  ``"94658300"`` does not match the needle ``9465830`` (compressed caches often add or drop digits).
- ``rouge1``: Rouge-1 F1 with the tokenisation of Google's ``rouge_score`` (lower case, runs of
  ``[a-z0-9]``), without stemming. The paper (after PyramidKV) scores Rouge-1 F against the needle
  sentence with ``use_stemmer=True`` and reports it ×10; here it is in ``[0, 1]`` and unstemmed.
- ``string_match_all`` / ``string_match_part``: RULER (``scripts/eval/synthetic/constants.py``),
  case-insensitive containment.
- LongBench (``THUDM/LongBench``, ``metrics.py``), reproduced faithfully, quirks included:
  ``classification_score`` removes from the match list while iterating over it and never takes
  its difflib fallback (LongBench tests ``em_match_list != 0``, always true); ``rouge_score`` is the
  ``rouge`` package's summary-level Rouge-L F (sentences split on ``"."``, unique-word counts) and
  0 when the package would raise (empty text); ``code_sim_score`` is fuzzywuzzy's pure-Python
  ``fuzz.ratio`` (difflib ``SequenceMatcher``, rounded to an integer percent), as installed by
  LongBench's requirements; ``rapidfuzz`` is not used because its ratio differs.
- ``qa_f1_zh`` and ``rouge_zh`` segment Chinese with ``jieba`` when it is installed; without it they
  fall back to single characters (scores then differ from LongBench's; :data:`HAS_JIEBA` says
  which is in use).
"""

from __future__ import annotations

import difflib
import importlib.util
import re
import string
from collections import Counter
from typing import Any, Callable, Iterable, Sequence

from windowkv.eval import long_answer as _long_answer

MetricFunction = Callable[..., float]
HAS_JIEBA = importlib.util.find_spec("jieba") is not None
_ZH_PUNCTUATION = "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏."
_DIGITS = frozenset("0123456789")
_ALL_PUNCTUATION = frozenset(string.punctuation + _ZH_PUNCTUATION)


# ---------------------------------------------------------------------------- text normalisation

def normalize_answer(text: str) -> str:
    """LongBench/SQuAD: lower case, drop punctuation, articles and extra whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def normalize_zh_answer(text: str) -> str:
    """LongBench: lower case, drop Chinese and ASCII punctuation and all whitespace."""
    return "".join("".join(ch for ch in text.lower() if ch not in _ALL_PUNCTUATION).split())


def zh_tokens(text: str) -> list[str]:
    """Chinese words (``jieba.cut``, precise mode) or, without jieba, single characters."""
    if HAS_JIEBA:
        import jieba

        return list(jieba.cut(text, cut_all=False))
    return list(text)


def rouge_tokens(text: str) -> list[str]:
    """Google ``rouge_score`` tokens: lower-cased runs of ``[a-z0-9]`` (no stemming)."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()


# ---------------------------------------------------------------------------- building blocks

def token_f1(prediction: Sequence[str], reference: Sequence[str]) -> float:
    """F1 of the multiset overlap of two token lists (0 when nothing is shared)."""
    same = sum((Counter(prediction) & Counter(reference)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(prediction), same / len(reference)
    return 2 * precision * recall / (precision + recall)


def _lcs_words(ref: list[str], hyp: list[str]) -> set[str]:
    """Words of one longest common subsequence (the ``rouge`` package's back-tracking order)."""
    n, m = len(ref), len(hyp)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            table[i][j] = table[i - 1][j - 1] + 1 if ref[i - 1] == hyp[j - 1] else max(table[i - 1][j], table[i][j - 1])
    out, i, j = set(), n, m
    while i > 0 and j > 0:
        if ref[i - 1] == hyp[j - 1]:
            out.add(ref[i - 1])
            i, j = i - 1, j - 1
        elif table[i - 1][j] > table[i][j - 1]:
            i -= 1
        else:
            j -= 1
    return out


def rouge_l_summary(prediction: str, reference: str) -> float:
    """Summary-level Rouge-L F of the ``rouge`` package (``Rouge().get_scores``), as LongBench uses it.

    Texts are split into sentences on ``"."``; words are ``sentence.split(" ")``; counts are of
    unique words (the package's default ``exclusive=True``). Raises ``ValueError`` for an empty text,
    like the package.
    """
    hyp = [" ".join(s.split()) for s in prediction.split(".") if len(s) > 0]
    ref = [" ".join(s.split()) for s in reference.split(".") if len(s) > 0]
    if not hyp or not ref:
        raise ValueError("Collections must contain at least 1 sentence.")
    ref_words = {w for s in ref for w in s.split(" ")}
    hyp_words = {w for s in hyp for w in s.split(" ")}
    union: set[str] = set()
    hits = 0
    for ref_sentence in ref:
        before = len(union)
        for hyp_sentence in hyp:
            union |= _lcs_words(ref_sentence.split(" "), hyp_sentence.split(" "))
        hits += len(union) - before
    recall, precision = hits / len(ref_words), hits / len(hyp_words)
    return 2.0 * (precision * recall) / (precision + recall + 1e-8)


def fuzz_ratio(a: str, b: str) -> int:
    """fuzzywuzzy's pure-Python ``fuzz.ratio``: 100 for equal strings, 0 if one is empty."""
    if a == b:
        return 100
    if not a or not b:
        return 0
    return int(round(100 * difflib.SequenceMatcher(None, a, b).ratio()))


# ---------------------------------------------------------------------------- one gold answer

def needle_exact_one(prediction: str, gold: str) -> float:
    gold = gold.strip().lower()
    if not gold:
        return 0.0
    before = "(?<![0-9])" if gold[0] in _DIGITS else ""
    after = "(?![0-9])" if gold[-1] in _DIGITS else ""
    return float(re.search(before + re.escape(gold) + after, prediction.lower()) is not None)


def rouge1_one(prediction: str, gold: str) -> float:
    return token_f1(rouge_tokens(prediction), rouge_tokens(gold))


def qa_f1_one(prediction: str, gold: str) -> float:
    return token_f1(normalize_answer(prediction).split(), normalize_answer(gold).split())


def qa_f1_zh_one(prediction: str, gold: str) -> float:
    pred = [t for t in (normalize_zh_answer(w) for w in zh_tokens(prediction)) if t]
    ref = [t for t in (normalize_zh_answer(w) for w in zh_tokens(gold)) if t]
    return token_f1(pred, ref)


def rouge_l_one(prediction: str, gold: str) -> float:
    try:
        return rouge_l_summary(prediction, gold)
    except (ValueError, ZeroDivisionError):  # LongBench: a bare ``except: return 0.0``
        return 0.0


def rouge_zh_one(prediction: str, gold: str) -> float:
    return rouge_l_one(" ".join(zh_tokens(prediction)), " ".join(zh_tokens(gold)))


def classification_one(prediction: str, gold: str, all_classes: Iterable[str] | None = None) -> float:
    if all_classes is None:
        raise ValueError("classification_score needs all_classes (the dataset's label set)")
    matches = [name for name in all_classes if name in prediction]
    for term in matches:  # removing while iterating skips the next term: LongBench does the same
        if term in gold and term != gold:
            matches.remove(term)
    return 1.0 / len(matches) if gold in matches else 0.0


def _id_score(prediction: str, gold_id: str) -> float:
    numbers = re.findall(r"\d+", prediction)
    return 0.0 if not numbers else sum(n == gold_id for n in numbers) / len(numbers)


def retrieval_one(prediction: str, gold: str) -> float:
    found = re.findall(r"Paragraph (\d+)", gold)
    if not found:
        raise ValueError(f"retrieval_score: gold answer {gold!r} has no 'Paragraph N'")
    return _id_score(prediction, found[0])


def retrieval_zh_one(prediction: str, gold: str) -> float:
    found = re.findall(r"段落(\d+)", gold)
    if not found:
        raise ValueError(f"retrieval_zh_score: gold answer {gold!r} has no '段落N'")
    return _id_score(prediction, found[0])


def count_one(prediction: str, gold: str) -> float:
    return _id_score(prediction, str(gold))


def code_sim_one(prediction: str, gold: str) -> float:
    line = ""
    for candidate in prediction.lstrip("\n").split("\n"):  # first line that is not a comment/fence
        if "`" not in candidate and "#" not in candidate and "//" not in candidate:
            line = candidate
            break
    return fuzz_ratio(line, gold) / 100


# ---------------------------------------------------------------------------- against all answers

def best_of(one: Callable[..., float], *, needs: tuple[str, ...] = ()) -> MetricFunction:
    """Lift a one-answer score to a list of answers: the max (0 for no answers)."""

    def metric(prediction: str, answers: Sequence[str], **context: Any) -> float:
        kwargs = {k: context[k] for k in needs if k in context}
        return max((float(one(prediction, str(a), **kwargs)) for a in answers), default=0.0)

    metric.__name__ = one.__name__.removesuffix("_one")
    metric.__doc__ = f"Max over the answers of ``{one.__name__}``."
    return metric


def string_match_all(prediction: str, answers: Sequence[str], **_: Any) -> float:
    """RULER: the fraction of answers that appear in the prediction (case-insensitive)."""
    if not answers:
        return 0.0
    low = prediction.lower()
    return sum(a.lower() in low for a in answers) / len(answers)


def string_match_part(prediction: str, answers: Sequence[str], **_: Any) -> float:
    """RULER: 1 if any answer appears in the prediction (case-insensitive)."""
    low = prediction.lower()
    return float(any(a.lower() in low for a in answers))


METRICS: dict[str, MetricFunction] = {
    "needle_exact": best_of(needle_exact_one),
    "rouge1": best_of(rouge1_one),
    "string_match_all": string_match_all,
    "string_match_part": string_match_part,
    "qa_f1": best_of(qa_f1_one),
    "qa_f1_zh": best_of(qa_f1_zh_one),
    "rouge_score": best_of(rouge_l_one),
    "rouge_zh": best_of(rouge_zh_one),
    "classification_score": best_of(classification_one, needs=("all_classes",)),
    "retrieval_score": best_of(retrieval_one),
    "retrieval_zh_score": best_of(retrieval_zh_one),
    "count_score": best_of(count_one),
    "code_sim_score": best_of(code_sim_one),
    "list_recall": _long_answer.list_recall,
    "list_exact": _long_answer.list_exact,
}


POSTPROCESS = ("ruler", "first_line")


def postprocess(prediction: str, kind: str | None) -> str:
    """Clean a prediction before scoring.

    Args:
        kind: ``None`` (unchanged), ``"ruler"`` (strip, control characters become new lines: RULER's
            ``postprocess_pred``) or ``"first_line"`` (the first line after leading new lines: LongBench
            for trec, triviaqa, samsum and lsht).
    """
    if kind is None:
        return prediction
    if kind == "ruler":
        return re.sub(r"[\x00-\x1f]", "\n", prediction.strip()).strip()
    if kind == "first_line":
        return prediction.lstrip("\n").split("\n")[0]
    raise ValueError(f"unknown postprocess {kind!r}; known: {', '.join(POSTPROCESS)}")
