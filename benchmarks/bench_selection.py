#!/usr/bin/env python
"""Cost of windowkv's prefill scoring + selection for one layer, against the layer's own attention.

For each prompt length ``L`` the script builds random tensors shaped like one Llama-3-8B layer
(batch 1, 32 query heads, 8 KV heads, head dim 128), in **float32** (CPU), and measures:

* ``windowkv``: :meth:`windowkv.Policy.select_layer` of a registered preset for the group leader
  layer 0 (the layer that scores; with index sharing the 7 followers of its group only reuse the
  positions) -- suffix-attention scoring, alignment, window scoring, ranking and mask -> positions.
  The scorer alone (``SuffixAttentionScorer`` via a ``LayerInputs``) is timed too. Every profile of
  the preset is benchmarked (``windowkv``: ``qa`` = window max over ``w=8``, ``s=32``; ``other`` =
  window average, ``s=16``). The query projection of the suffix is *not* included: the benchmark
  hands precomputed queries to ``project_queries`` (a re-projection of ``s`` tokens is tiny).
* ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True,
  enable_gqa=True)`` over ``L`` queries and ``L`` keys: the prefill attention of that layer.
* ``loop``: a straightforward reference-style implementation, written here only as the comparison:
  KV heads repeated to the query heads, suffix attention computed with tensor ops, then a Python loop
  over windows with one ``.item()`` per window, a Python sort, and the kept index list.

Extra memory of the windowkv path is the peak of the bytes allocated (minus freed) while the call
runs, from ``torch.profiler`` memory events; it is reported in MB and normalised by
``s * L * H_q * 4`` bytes (one float32 ``[H_q, s, L]`` attention tensor): a constant ratio across
``L`` means the extra memory is O(s*L).

Run ``python benchmarks/bench_selection.py --help`` for the options; see ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F

from windowkv import Policy
from windowkv.errors import ConfigError
from windowkv.run import LayerInputs
from windowkv.selectors import WindowAverageSelector, WindowMaxSelector

# One Llama-3-8B attention layer.
BATCH = 1
Q_HEADS = 32
KV_HEADS = 8
HEAD_DIM = 128
NUM_LAYERS = 32
DTYPE = torch.float32  # CPU: bf16 matmuls are slow and unrepresentative here; say so in the table.

DEFAULT_LENGTHS = "1k,2k,4k,8k,16k,32k"

# Targets of issue 2, item 9.
TARGET_RATIO_PCT = 5.0  # scoring + selection <= 5% of the layer's attention time ...
TARGET_RATIO_MIN_L = 8192  # ... at L >= 8k
TARGET_SPEEDUP = 20.0  # >= 20x faster than the per-window loop ...
TARGET_SPEEDUP_L = 32768  # ... at 32k


# ----------------------------------------------------------------------------- timing helpers


def parse_length(text: str) -> int:
    text = text.strip().lower()
    if text.endswith("k"):
        return int(float(text[:-1]) * 1024)
    return int(text)


def fmt_length(n: int) -> str:
    return f"{n // 1024}k" if n % 1024 == 0 else str(n)


@dataclass
class Timing:
    """Wall-clock samples of one measurement, in milliseconds."""

    samples_ms: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms) if self.samples_ms else float("nan")

    @property
    def minimum(self) -> float:
        return min(self.samples_ms) if self.samples_ms else float("nan")


def measure(fn: Callable[[], Any], repeats: int, max_seconds: float, setup: Callable[[], Any] | None = None,
            warmup: bool = True, min_seconds: float = 0.5) -> Timing:
    """Time ``fn``: ``repeats`` calls, fewer when they exceed ``max_seconds``, more when they are cheap.

    One warm-up call runs first (not recorded) unless ``warmup`` is False or the call is slow.
    Cheap calls are repeated until ``min_seconds`` are spent (at most ``10 * repeats`` samples), so
    that the median of a millisecond-scale measurement resists the noise of a shared machine.
    ``setup`` runs before every call, outside the timed region. At least one call is recorded.
    """
    timing = Timing()
    spent = 0.0
    if warmup:
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        first = time.perf_counter() - t0
        spent += first
        if first > max_seconds / 2:  # too slow to afford a discarded call: keep it as a sample
            timing.samples_ms.append(first * 1e3)
    while True:
        n = len(timing.samples_ms)
        if n and spent >= max_seconds:
            break
        if n >= repeats and (spent >= min_seconds or n >= 10 * repeats):
            break
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        spent += dt
        timing.samples_ms.append(dt * 1e3)
    return timing


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (kineto prints a line at every profiler start and stop)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_extra_bytes(fn: Callable[[], Any]) -> int | None:
    """Peak of (bytes allocated - bytes freed) on the CPU while ``fn`` runs, from profiler events.

    The result of ``fn`` stays referenced until the end, so it is included (it is small here:
    the kept positions). Returns None when the profiler's memory events are not available.
    """
    from torch.profiler import ProfilerActivity, profile

    keep = []
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        keep.append(fn())
    try:
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    except AttributeError:  # private API moved
        return None
    events.sort(key=lambda e: e.start_ns())
    current = peak = 0
    for e in events:
        current += e.nbytes()
        peak = max(peak, current)
    del keep
    return peak


# ----------------------------------------------------------------------------- the layer


@dataclass
class Layer:
    """Random prefill tensors of one layer."""

    queries: torch.Tensor  # [B, H_q, L, D]
    keys: torch.Tensor  # [B, H_kv, L, D]
    values: torch.Tensor  # [B, H_kv, L, D]
    key_valid: torch.Tensor  # [B, L]

    @property
    def length(self) -> int:
        return self.keys.shape[2]

    @property
    def scaling(self) -> float:
        return HEAD_DIM ** -0.5

    def project_queries(self, start: int, end: int) -> torch.Tensor:
        return self.queries[:, :, start:end]


def make_layer(length: int, seed: int) -> Layer:
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(BATCH, Q_HEADS, length, HEAD_DIM, generator=gen, dtype=DTYPE)
    k = torch.randn(BATCH, KV_HEADS, length, HEAD_DIM, generator=gen, dtype=DTYPE)
    v = torch.randn(BATCH, KV_HEADS, length, HEAD_DIM, generator=gen, dtype=DTYPE)
    return Layer(q, k, v, torch.ones(BATCH, length, dtype=torch.bool))


def sdpa(layer: Layer) -> torch.Tensor:
    return F.scaled_dot_product_attention(layer.queries, layer.keys, layer.values, is_causal=True,
                                          enable_gqa=True)


# ----------------------------------------------------------------------------- the loop baseline


def loop_token_scores(layer: Layer, suffix: int) -> torch.Tensor:
    """Reference-style scoring: ``[B, H_q, R]`` suffix attention summed over the suffix queries.

    As the reference code does it: KV heads repeated to the query heads (``repeat_kv``), attention of
    the suffix queries over all keys in float32 with a causal mask inside the suffix, softmax, sum
    over the suffix queries. Tensor operations, no Python loop.
    """
    length = layer.length
    groups = Q_HEADS // KV_HEADS
    keys = layer.keys.repeat_interleave(groups, dim=1)  # [B, H_q, L, D]
    q = layer.queries[:, :, length - suffix:]
    logits = torch.matmul(q, keys.transpose(2, 3)) * layer.scaling  # [B, H_q, s, L]
    logits[..., length - suffix:] += torch.full((suffix, suffix), float("-inf")).triu(1)
    attn = torch.softmax(logits, dim=-1)
    return attn[..., : length - suffix].sum(dim=-2)


def loop_windows(token_scores: torch.Tensor, length: int, suffix: int, window: int, mode: str, top_k: int,
                 budget: int) -> torch.Tensor:
    """Reference-style selection: a Python loop over windows with one ``.item()`` each, a Python sort.

    A window's score averages over all query heads (head-shared selection): the ``mean`` of its
    token scores, or (``max``) the mean of each head's ``top_k`` token scores. As in the reference,
    ``ceil((R - budget) / window)`` windows are dropped. Returns ``[K]`` long kept prompt positions
    (kept review windows in position order, then the suffix).
    """
    review = length - suffix
    num_windows = -(-review // window)
    scored = []
    for i in range(num_windows):
        win = token_scores[..., i * window: min((i + 1) * window, review)]
        if mode == "max":
            score = win.topk(min(top_k, win.shape[-1]), dim=-1).values.mean().item()
        else:
            score = win.mean().item()
        scored.append((i, score))
    drop = math.ceil((review - budget) / window)
    if drop <= 0:
        return torch.arange(length)
    if drop >= num_windows:
        return torch.arange(review, length)
    ranked = sorted(scored, key=lambda x: x[1], reverse=True)[: num_windows - drop]
    kept = sorted(i for i, _ in ranked)
    positions = [p for i in kept for p in range(i * window, min((i + 1) * window, review))]
    positions.extend(range(review, length))
    return torch.tensor(positions, dtype=torch.long)


def loop_select(layer: Layer, suffix: int, window: int, mode: str, top_k: int, budget: int) -> torch.Tensor:
    """The whole reference-style path: :func:`loop_token_scores` then :func:`loop_windows`."""
    scores = loop_token_scores(layer, suffix)
    return loop_windows(scores, layer.length, suffix, window, mode, top_k, budget)


def loop_params(selector: Any) -> tuple[str, int, int] | None:
    """``(mode, window, top_k)`` of a window selector the loop can replicate, else None."""
    if getattr(selector, "heads", None) != "shared":
        return None
    if isinstance(selector, WindowMaxSelector):
        return "max", selector.window_size, selector.k
    if type(selector) is WindowAverageSelector:
        return "average", selector.window_size, 1
    return None


# ----------------------------------------------------------------------------- one benchmark row


@dataclass
class Row:
    length: int
    policy: str
    profile: str
    selector: str
    suffix: int
    budget: int
    windowkv_ms: float  # select_layer of a scoring layer (leader): scoring + selection
    windowkv_samples: list[float]
    scorer_ms: float | None  # the policy's scorer alone
    select_ms: float | None  # select_layer with the scores already computed (a sharing follower)
    sdpa_ms: float | None
    sdpa_samples: list[float]
    loop_ms: float | None  # reference-style scoring + per-window loop
    loop_samples: list[float]
    loop_windows_ms: float | None  # the per-window loop alone, from precomputed token scores
    extra_bytes: int | None  # peak extra bytes of select_layer (leader)
    extra_bytes_scorer: int | None
    extra_bytes_loop: int | None
    agreement: float | None  # Jaccard of windowkv's and the loop's kept positions
    memory_verdict: str | None = None  # set once every length of the profile is measured

    @property
    def ratio_pct(self) -> float | None:
        return None if self.sdpa_ms is None else 100.0 * self.windowkv_ms / self.sdpa_ms

    @property
    def speedup(self) -> float | None:
        return None if self.loop_ms is None else self.loop_ms / self.windowkv_ms

    @property
    def select_speedup(self) -> float | None:
        if self.loop_windows_ms is None or not self.select_ms:
            return None
        return self.loop_windows_ms / self.select_ms

    @property
    def extra_units(self) -> float | None:
        """Extra bytes per ``s * L * H_q * 4`` bytes (one float32 suffix-attention tensor)."""
        if self.extra_bytes is None:
            return None
        return self.extra_bytes / (self.suffix * self.length * Q_HEADS * 4)

    def verdicts(self) -> dict[str, str]:
        out = {}
        if self.length >= TARGET_RATIO_MIN_L and self.ratio_pct is not None:
            out["ratio"] = "PASS" if self.ratio_pct <= TARGET_RATIO_PCT else "FAIL"
        if self.length >= TARGET_SPEEDUP_L and self.speedup is not None:
            out["loop"] = "PASS" if self.speedup >= TARGET_SPEEDUP else "FAIL"
        if self.length >= TARGET_SPEEDUP_L and self.select_speedup is not None:
            out["loopsel"] = "PASS" if self.select_speedup >= TARGET_SPEEDUP else "FAIL"
        if self.memory_verdict:
            out["mem"] = self.memory_verdict
        return out

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(ratio_pct=self.ratio_pct, speedup=self.speedup, select_speedup=self.select_speedup,
                 extra_units=self.extra_units, verdicts=self.verdicts())
        return d


def set_memory_verdicts(rows: list[Row], tolerance: float = 0.25) -> None:
    """Extra memory is O(s*L) when ``extra / (s*L*H_q*4)`` stays within ``tolerance`` across lengths."""
    by_profile: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        if r.extra_units is not None and r.extra_units > 0:
            by_profile.setdefault((r.policy, r.profile), []).append(r)
    for group in by_profile.values():
        if len(group) < 2:
            continue
        base = min(group, key=lambda r: r.length).extra_units
        for r in group:
            r.memory_verdict = "PASS" if abs(r.extra_units / base - 1) <= tolerance else "FAIL"


def fresh_run(policy: Policy, length: int, label: str):
    return policy.start_run([length] * BATCH, length, NUM_LAYERS, task=label)


def bench_profile(policy: Policy, label: str, layer: Layer, args: argparse.Namespace,
                  sdpa_timing: Timing | None) -> Row:
    length = layer.length
    profile = policy.profiles[label]
    suffix = profile.suffix_size
    holder: dict[str, Any] = {}

    def setup() -> None:  # a new run per call: the leader's scores are cached in the run
        holder["run"] = fresh_run(policy, length, label)

    def call():
        return policy.select_layer(holder["run"], 0, layer.keys, layer.values, layer.key_valid,
                                   layer.project_queries, layer.scaling, Q_HEADS // KV_HEADS)

    setup()
    run = holder["run"]
    budget = run.groups[0].budgets[0][0] if run.groups else length
    wkv = measure(call, args.repeats, args.max_seconds, setup=setup)
    if not run.layer_compresses(0):  # e.g. the ``full`` preset: select_layer returns None at once
        return Row(
            length=length, policy=policy.name, profile=label, selector=profile.selector.name, suffix=suffix,
            budget=budget, windowkv_ms=wkv.median, windowkv_samples=wkv.samples_ms, scorer_ms=None,
            select_ms=None, sdpa_ms=sdpa_timing.median if sdpa_timing else None,
            sdpa_samples=sdpa_timing.samples_ms if sdpa_timing else [], loop_ms=None, loop_samples=[],
            loop_windows_ms=None, extra_bytes=None, extra_bytes_scorer=None, extra_bytes_loop=None,
            agreement=None,
        )

    # selection only: the same run again, its scores are cached (what a sharing follower layer pays)
    setup()
    call()
    select_t = measure(call, args.repeats, args.max_seconds)

    inputs = LayerInputs(0, NUM_LAYERS, layer.keys, layer.values, layer.key_valid, suffix, layer.scaling,
                         Q_HEADS // KV_HEADS, layer.project_queries)
    scorer_t = measure(lambda: policy.scorer(inputs), args.repeats, args.max_seconds)

    extra = extra_scorer = extra_loop = None
    if not args.no_memory:
        setup()
        extra = peak_extra_bytes(call)
        extra_scorer = peak_extra_bytes(lambda: policy.scorer(inputs))

    loop_t = loop_win_t = None
    agreement = None
    params = loop_params(profile.selector)
    if params is not None and length <= args.loop_max_length:
        mode, window, top_k = params
        fn = lambda: loop_select(layer, suffix, window, mode, top_k, budget)  # noqa: E731
        # the loop is slow and steady: one sample is enough at long lengths
        long = length > 8192
        loop_t = measure(fn, 1 if long else args.repeats, args.max_seconds, warmup=not long)
        token_scores = loop_token_scores(layer, suffix)
        loop_win_t = measure(lambda: loop_windows(token_scores, length, suffix, window, mode, top_k, budget),
                             1 if long else args.repeats, args.max_seconds, warmup=not long)
        del token_scores
        if not args.no_memory:
            extra_loop = peak_extra_bytes(fn)
        setup()
        sel = call()
        ours = set(sel.positions[0, 0][sel.valid[0, 0]].tolist()) if sel is not None else set(range(length))
        ref = set(fn().tolist())
        agreement = len(ours & ref) / max(len(ours | ref), 1)

    return Row(
        length=length, policy=policy.name, profile=label, selector=profile.selector.name, suffix=suffix,
        budget=budget, windowkv_ms=wkv.median, windowkv_samples=wkv.samples_ms,
        scorer_ms=scorer_t.median, select_ms=select_t.median,
        sdpa_ms=sdpa_timing.median if sdpa_timing else None,
        sdpa_samples=sdpa_timing.samples_ms if sdpa_timing else [],
        loop_ms=loop_t.median if loop_t else None, loop_samples=loop_t.samples_ms if loop_t else [],
        loop_windows_ms=loop_win_t.median if loop_win_t else None,
        extra_bytes=extra, extra_bytes_scorer=extra_scorer, extra_bytes_loop=extra_loop, agreement=agreement,
    )


# ----------------------------------------------------------------------------- output


def _f(x: float | None, spec: str) -> str:
    width = int(spec.split(".")[0]) if spec[0].isdigit() else 0
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-".rjust(width)
    return format(x, spec)


HEADER = (
    f"{'L':>5} {'policy/profile':<18} {'s':>3} {'windowkv':>9} {'scorer':>8} {'select':>7} {'sdpa':>8} "
    f"{'wkv/sdpa':>8} {'loop':>8} {'loop/wkv':>8} {'loopsel':>8} {'ls/sel':>7} {'extraMB':>7} "
    f"{'/sLH4':>5} {'agree':>6}  targets"
)


def format_row(r: Row, with_targets: bool = True) -> str:
    v = r.verdicts()
    targets = " ".join(f"{k}:{val}" for k, val in v.items()) or "-"
    pct = lambda x: _f(x, "7.2f") + ("%" if x is not None else " ")  # noqa: E731
    pct1 = lambda x: _f(x, "5.1f") + ("%" if x is not None else " ")  # noqa: E731
    times = lambda x: _f(x, "6.1f") + ("x" if x is not None else " ")  # noqa: E731
    return (
        f"{fmt_length(r.length):>5} {(r.policy + '/' + r.profile)[:18]:<18} {r.suffix:>3} "
        f"{_f(r.windowkv_ms, '9.1f')} {_f(r.scorer_ms, '8.1f')} {_f(r.select_ms, '7.2f')} "
        f"{_f(r.sdpa_ms, '8.0f')} {pct(r.ratio_pct)} {_f(r.loop_ms, '8.1f')} {times(r.speedup):>8} "
        f"{_f(r.loop_windows_ms, '8.1f')} {times(r.select_speedup):>7} "
        f"{_f(None if r.extra_bytes is None else r.extra_bytes / 2**20, '7.1f')} {_f(r.extra_units, '5.2f')} "
        f"{pct1(None if r.agreement is None else 100 * r.agreement)}"
        + (f"  {targets}" if with_targets else "")
    )


def environment() -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "loadavg_start": list(os.getloadavg()),
        "dtype": str(DTYPE),
        "shape": {"batch": BATCH, "q_heads": Q_HEADS, "kv_heads": KV_HEADS, "head_dim": HEAD_DIM,
                  "num_layers": NUM_LAYERS},
    }


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--lengths", default=DEFAULT_LENGTHS, help="prompt lengths, comma-separated (1k = 1024)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (median reported)")
    p.add_argument("--max-seconds", type=float, default=20.0,
                   help="stop repeating a measurement after this many seconds (at least one call)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's default)")
    p.add_argument("--policies", default="windowkv",
                   help="registered preset names, comma-separated; every profile of each is benchmarked")
    p.add_argument("--profiles", default=None, help="only these profile labels (comma-separated)")
    p.add_argument("--budget", default="0.25",
                   help="policy budget: tokens (int) or ratio of the review tokens (float)")
    p.add_argument("--loop-max-length", default="32k", help="skip the loop baseline above this length")
    p.add_argument("--sdpa-max-length", default="32k", help="skip the sdpa measurement above this length")
    p.add_argument("--no-memory", action="store_true", help="skip the profiler memory measurement")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", dest="json_out", default=None, metavar="OUT", help="save all results to OUT")
    args = p.parse_args(argv)
    args.loop_max_length = parse_length(args.loop_max_length)
    args.sdpa_max_length = parse_length(args.sdpa_max_length)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    lengths = [parse_length(x) for x in args.lengths.split(",") if x.strip()]
    budget: int | float = float(args.budget) if "." in args.budget else int(args.budget)

    policies = []
    for name in [n.strip() for n in args.policies.split(",") if n.strip()]:
        try:
            pol = Policy.from_preset(name, budget=budget)
        except ConfigError as exc:
            p.error(f"--policies: {exc}")
        labels = list(pol.profiles)
        if args.profiles:
            wanted = [x.strip() for x in args.profiles.split(",")]
            labels = [lab for lab in labels if lab in wanted]
        policies.append((pol, labels))

    env = environment()
    print(f"# windowkv selection benchmark: batch {BATCH}, {Q_HEADS} query heads, {KV_HEADS} KV heads, "
          f"head_dim {HEAD_DIM}, {str(DTYPE).replace('torch.', '')} on CPU, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; budget {args.budget}; layer 0 of {NUM_LAYERS} (group leader)")
    print("# times in ms (median); windowkv = Policy.select_layer; scorer = its scorer alone")
    print(HEADER, flush=True)
    rows: list[Row] = []
    t_start = time.perf_counter()
    for length in lengths:
        layer = make_layer(length, args.seed)
        sdpa_t = None
        if length <= args.sdpa_max_length:
            sdpa_t = measure(lambda: sdpa(layer), args.repeats, args.max_seconds, warmup=length <= 4096)
        for pol, labels in policies:
            for label in labels:
                row = bench_profile(pol, label, layer, args, sdpa_t)
                rows.append(row)
                print(format_row(row, with_targets=False), flush=True)
        del layer
    elapsed = time.perf_counter() - t_start
    set_memory_verdicts(rows)

    print("\n# results, with targets")
    print(HEADER)
    for row in sorted(rows, key=lambda r: (r.policy, r.profile, r.length)):
        print(format_row(row))

    env["loadavg_end"] = list(os.getloadavg())
    print(f"# load average (1 min) at start {env['loadavg_start'][0]:.2f}, at end {env['loadavg_end'][0]:.2f} "
          f"on {os.cpu_count()} CPUs: other processes make the timings noisy.")
    print(f"# total {elapsed:.0f} s. Targets: windowkv <= {TARGET_RATIO_PCT:g}% of sdpa at L >= "
          f"{fmt_length(TARGET_RATIO_MIN_L)}; loop/windowkv >= {TARGET_SPEEDUP:g}x at "
          f"{fmt_length(TARGET_SPEEDUP_L)}; '/sLH4' (extra bytes / (s*L*H_q*4)) ~constant across L (extra memory O(s*L)).")
    fails = [r for r in rows if "FAIL" in r.verdicts().values()]
    if fails:
        print(f"# {len(fails)} row(s) miss a target.")
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump({"environment": env, "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
                       "args": {k: v for k, v in vars(args).items()}, "elapsed_s": elapsed,
                       "rows": [r.to_json() for r in rows]}, fh, indent=1)
        print(f"# wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
