"""LongBench (Bai et al., 2023, arXiv 2308.14508): data loading, prompts, generation lengths, metrics.

Prompt templates, generation lengths and the dataset -> metric table are LongBench's
(``config/dataset2prompt.json``, ``config/dataset2maxlen.json``, ``eval.py``), as are the rules of
``pred.py`` and ``eval.py`` reproduced here:

- prompts longer than ``max_length`` tokens keep their first and last ``max_length // 2`` tokens
  (:func:`truncate_middle`);
- trec, triviaqa, samsum, lsht, lcc and repobench-p are given as raw text, without the chat template;
- trec, triviaqa, samsum and lsht are scored on the first line of the prediction; samsum generation
  stops at a new line (``Example.stop_strings``).

Data are LongBench's JSONL files (fields ``input``, ``context``, ``answers``, ``all_classes``,
``length``, ``dataset``, ``_id``): a file, or a directory of ``<dataset>.jsonl`` (the layout of
LongBench's ``data.zip``). Without a path, the Hugging Face ``datasets`` hub is tried when the
package is installed.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from windowkv.errors import WindowKVError
from windowkv.eval.examples import Example

_QA = "Answer the question based on the given passages. Only give me the answer and do not output any other words."
_ANS = "Answer the question as concisely as you can, using a single phrase"
_QASPER = ("If the question cannot be answered based on the information in the article, write \"unanswerable\". "
           "If the question is a yes/no question, answer \"yes\", \"no\", or \"unanswerable\". "
           "Do not provide any explanation.")
DATASET2PROMPT: dict[str, str] = {
    "narrativeqa": "You are given a story, which can be either a novel or a movie script, and a question. " + _ANS
    + " if possible. Do not provide any explanation.\n\nStory: {context}\n\nNow, answer the question based on the "
    "story as concisely as you can, using a single phrase if possible. Do not provide any explanation.\n\n"
    "Question: {input}\n\nAnswer:",
    "qasper": "You are given a scientific article and a question. " + _ANS + " or sentence if possible. " + _QASPER
    + "\n\nArticle: {context}\n\n Answer the question based on the above article as concisely as you can, using a "
    "single phrase or sentence if possible. " + _QASPER + "\n\nQuestion: {input}\n\nAnswer:",
    "multifieldqa_en": "Read the following text and answer briefly.\n\n{context}\n\nNow, answer the following "
    "question based on the above text, only give me the answer and do not output any other words.\n\n"
    "Question: {input}\nAnswer:",
    "multifieldqa_zh": "阅读以下文字并用中文简短回答：\n\n{context}\n\n现在请基于上面的文章回答下面的问题，只告诉我答案，"
    "不要输出任何其他字词。\n\n问题：{input}\n回答：",
    "hotpotqa": _QA + "\n\nThe following are given passages.\n{context}\n\n" + _QA + "\n\nQuestion: {input}\nAnswer:",
    "2wikimqa": _QA + "\n\nThe following are given passages.\n{context}\n\n" + _QA + "\n\nQuestion: {input}\nAnswer:",
    "musique": _QA + "\n\nThe following are given passages.\n{context}\n\n" + _QA + "\n\nQuestion: {input}\nAnswer:",
    "dureader": "请基于给定的文章回答下述问题。\n\n文章：{context}\n\n请基于上述文章回答下面的问题。\n\n问题：{input}\n回答：",
    "gov_report": "You are given a report by a government agency. Write a one-page summary of the report.\n\n"
    "Report:\n{context}\n\nNow, write a one-page summary of the report.\n\nSummary:",
    "qmsum": "You are given a meeting transcript and a query containing a question or instruction. Answer the query "
    "in one or more sentences.\n\nTranscript:\n{context}\n\nNow, answer the query based on the above meeting "
    "transcript in one or more sentences.\n\nQuery: {input}\nAnswer:",
    "multi_news": "You are given several news passages. Write a one-page summary of all news. \n\nNews:\n{context}\n\n"
    "Now, write a one-page summary of all the news.\n\nSummary:",
    "vcsum": "下面有一段会议记录，请你阅读后，写一段总结，总结会议的内容。\n会议记录：\n{context}\n\n会议总结：",
    "trec": "Please determine the type of the question below. Here are some examples of questions.\n\n"
    "{context}\n{input}",
    "triviaqa": "Answer the question based on the given passage. Only give me the answer and do not output any other "
    "words. The following are some examples.\n\n{context}\n\n{input}",
    "samsum": "Summarize the dialogue into a few short sentences. The following are some examples.\n\n"
    "{context}\n\n{input}",
    "lsht": "请判断给定新闻的类别，下面是一些例子。\n\n{context}\n{input}",
    "passage_count": "There are some paragraphs below sourced from Wikipedia. Some of them may be duplicates. Please "
    "carefully read these paragraphs and determine how many unique paragraphs there are after removing duplicates. "
    "In other words, how many non-repeating paragraphs are there in total?\n\n{context}\n\nPlease enter the final "
    "count of unique paragraphs after removing duplicates. The output format should only contain the number, such "
    "as 1, 2, 3, and so on.\n\nThe final answer is: ",
    "passage_retrieval_en": "Here are 30 paragraphs from Wikipedia, along with an abstract. Please determine which "
    "paragraph the abstract is from.\n\n{context}\n\nThe following is an abstract.\n\n{input}\n\nPlease enter the "
    "number of the paragraph that the abstract is from. The answer format must be like \"Paragraph 1\", "
    "\"Paragraph 2\", etc.\n\nThe answer is: ",
    "passage_retrieval_zh": "以下是若干段落文字，以及其中一个段落的摘要。请确定给定的摘要出自哪一段。\n\n{context}\n\n下面是一个摘要\n\n"
    "{input}\n\n请输入摘要所属段落的编号。答案格式必须是\"段落1\"，\"段落2\"等格式\n\n答案是：",
    "lcc": "Please complete the code given below. \n{context}Next line of code:\n",
    "repobench-p": "Please complete the code given below. \n{context}{input}Next line of code:\n",
}
DATASET2MAXLEN: dict[str, int] = {
    "narrativeqa": 128, "qasper": 128, "multifieldqa_en": 64, "multifieldqa_zh": 64, "hotpotqa": 32,
    "2wikimqa": 32, "musique": 32, "dureader": 128, "gov_report": 512, "qmsum": 512, "multi_news": 512,
    "vcsum": 512, "trec": 64, "triviaqa": 32, "samsum": 128, "lsht": 64, "passage_count": 32,
    "passage_retrieval_en": 32, "passage_retrieval_zh": 32, "lcc": 64, "repobench-p": 64,
}
DATASET2METRIC: dict[str, str] = {
    "narrativeqa": "qa_f1", "qasper": "qa_f1", "multifieldqa_en": "qa_f1", "multifieldqa_zh": "qa_f1_zh",
    "hotpotqa": "qa_f1", "2wikimqa": "qa_f1", "musique": "qa_f1", "dureader": "rouge_zh",
    "gov_report": "rouge_score", "qmsum": "rouge_score", "multi_news": "rouge_score", "vcsum": "rouge_zh",
    "trec": "classification_score", "triviaqa": "qa_f1", "samsum": "rouge_score", "lsht": "classification_score",
    "passage_retrieval_en": "retrieval_score", "passage_count": "count_score",
    "passage_retrieval_zh": "retrieval_zh_score", "lcc": "code_sim_score", "repobench-p": "code_sim_score",
}
LONGBENCH_DATASETS = tuple(DATASET2PROMPT)
#: the datasets of LongBench-E (uniform length distribution), files ``<dataset>_e.jsonl``
LONGBENCH_E_DATASETS = ("qasper", "multifieldqa_en", "hotpotqa", "2wikimqa", "gov_report", "multi_news", "trec",
                        "triviaqa", "samsum", "passage_count", "passage_retrieval_en", "lcc", "repobench-p")
NO_CHAT_DATASETS = frozenset({"trec", "triviaqa", "samsum", "lsht", "lcc", "repobench-p"})
FIRST_LINE_DATASETS = frozenset({"trec", "triviaqa", "samsum", "lsht"})
REQUIRED_FIELDS = ("input", "context", "answers")
HUB_ID = "THUDM/LongBench"


class LongBenchDataError(WindowKVError, ValueError):
    """LongBench data cannot be found or read; the message says what to pass instead."""


def base_dataset(dataset: str) -> str:
    """``"hotpotqa_e"`` -> ``"hotpotqa"``; raises for a name LongBench does not have."""
    base = dataset[:-2] if dataset.endswith("_e") and dataset[:-2] in LONGBENCH_E_DATASETS else dataset
    if base not in DATASET2PROMPT:
        import difflib

        close = difflib.get_close_matches(dataset, [*LONGBENCH_DATASETS, *(f"{d}_e" for d in LONGBENCH_E_DATASETS)], 1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise LongBenchDataError(f"unknown LongBench dataset {dataset!r}.{hint} Known: {', '.join(LONGBENCH_DATASETS)} "
                                 f"(and '<name>_e' for LongBench-E: {', '.join(LONGBENCH_E_DATASETS)})")
    return base


def read_jsonl(file: str | Path) -> list[dict[str, Any]]:
    """Records of a LongBench JSONL file, checked for the fields every record needs."""
    file = Path(file)
    records = []
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LongBenchDataError(f"{file}:{number}: not valid JSON ({exc.msg})") from None
            missing = [f for f in REQUIRED_FIELDS if f not in record] if isinstance(record, dict) else ["(an object)"]
            if missing:
                raise LongBenchDataError(f"{file}:{number}: missing field(s) {', '.join(missing)}; a LongBench "
                                         f"record has {', '.join(REQUIRED_FIELDS)}, all_classes, length, dataset, _id")
            if isinstance(record["answers"], str):
                record["answers"] = [record["answers"]]
            records.append(record)
    return records


def load_longbench(dataset: str, path: str | Path | None = None) -> list[dict[str, Any]]:
    """The records of one LongBench dataset.

    Args:
        dataset: e.g. ``"hotpotqa"``, or ``"hotpotqa_e"`` for LongBench-E.
        path: a JSONL file, or a directory holding ``<dataset>.jsonl`` (also searched in ``data/``).
            ``None`` loads ``THUDM/LongBench`` with the ``datasets`` package, when installed and online.

    Raises:
        LongBenchDataError: the file is missing or malformed, or the hub cannot be used.
    """
    base_dataset(dataset)
    if path is None:
        return _load_from_hub(dataset)
    path = Path(path).expanduser()
    if path.is_dir():
        candidates = [path / f"{dataset}.jsonl", path / "data" / f"{dataset}.jsonl"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise LongBenchDataError(f"no {dataset}.jsonl in {path} (looked for {', '.join(map(str, candidates))})")
        path = found
    elif not path.is_file():
        raise LongBenchDataError(f"LongBench data path {path} does not exist")
    return read_jsonl(path)


def _load_from_hub(dataset: str) -> list[dict[str, Any]]:
    hint = (f"download LongBench's data.zip (https://huggingface.co/datasets/{HUB_ID}) and pass the directory "
            f"holding {dataset}.jsonl as the data path")
    if importlib.util.find_spec("datasets") is None:
        raise LongBenchDataError(f"no LongBench data path given and the 'datasets' package is not installed: {hint}")
    try:
        import datasets

        data = datasets.load_dataset(HUB_ID, dataset, split="test")
    except Exception as exc:  # offline, gated, or a datasets release without script support
        raise LongBenchDataError(f"cannot load {HUB_ID}/{dataset} from the hub ({type(exc).__name__}: {exc}); "
                                 f"{hint}") from exc
    return [dict(row) for row in data]


def build_prompt(dataset: str, record: dict[str, Any]) -> str:
    """LongBench's prompt for one record (``dataset2prompt[dataset].format(**record)``)."""
    return DATASET2PROMPT[base_dataset(dataset)].format(**record)


def truncate_middle(tokenizer: Any, prompt: str, max_length: int) -> tuple[str, bool]:
    """LongBench's truncation: above ``max_length`` tokens keep the first and last ``max_length // 2``.

    Tokenised as LongBench does (with the tokenizer's special tokens), decoded without them.

    Returns:
        ``(prompt, truncated)``.
    """
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2 (got {max_length})")
    ids = tokenizer(prompt, truncation=False)["input_ids"]
    if len(ids) <= max_length:
        return prompt, False
    half = max_length // 2
    head = tokenizer.decode(ids[:half], skip_special_tokens=True)
    tail = tokenizer.decode(ids[-half:], skip_special_tokens=True)
    return head + tail, True


def longbench_examples(dataset: str, *, path: str | Path | None = None, tokenizer: Any = None,
                       max_length: int | None = None, limit: int | None = None) -> list[Example]:
    """LongBench examples of one dataset, prompts built (and truncated) as LongBench's ``pred.py`` does.

    Args:
        dataset: a LongBench dataset (``"hotpotqa"``) or LongBench-E one (``"hotpotqa_e"``).
        path: see :func:`load_longbench`.
        tokenizer, max_length: truncate prompts longer than ``max_length`` tokens (both needed).
        limit: keep the first ``limit`` records.
    """
    base = base_dataset(dataset)
    if max_length is not None and tokenizer is None:
        raise ValueError("truncating LongBench prompts to max_length needs the model's tokenizer")
    records = load_longbench(dataset, path)
    if limit is not None:
        records = records[:limit]
    examples, seen = [], set()
    for i, record in enumerate(records):
        prompt, truncated = build_prompt(base, record), False
        if max_length is not None:
            prompt, truncated = truncate_middle(tokenizer, prompt, max_length)
        uid = str(record.get("_id") or i)
        uid = uid if uid not in seen else f"{uid}-{i}"
        seen.add(uid)
        meta: dict[str, Any] = {"dataset": dataset, "_id": record.get("_id"), "truncated": truncated,
                                "language": record.get("language")}
        examples.append(Example(
            id=f"longbench-{dataset}-{uid}", task=f"longbench/{dataset}", prompt=prompt,
            answers=[str(a) for a in record["answers"]], metric=DATASET2METRIC[base],
            max_new_tokens=DATASET2MAXLEN[base], meta=meta, use_chat_template=base not in NO_CHAT_DATASETS,
            source_length=record.get("length"),
            all_classes=tuple(record.get("all_classes") or ()),
            postprocess="first_line" if base in FIRST_LINE_DATASETS else None,
            stop_strings=("\n",) if base == "samsum" else ()))
    return examples
