"""``windowkv bench``: time to first token, decode speed, KV bytes held and peak memory of policies
against the plain model, over prompt lengths (CPU and CUDA).

- :mod:`~windowkv.bench.clock`: per-step timestamps (``perf_counter`` on CPU, CUDA events on a GPU);
- :mod:`~windowkv.bench.measure`: one timed greedy generation under whatever compression is active;
- :mod:`~windowkv.bench.prompts`: synthetic prompts of exact token lengths;
- :mod:`~windowkv.bench.stats`: medians and spreads of repeated samples;
- :mod:`~windowkv.bench.runner`: the grid (warm-up, interleaved repeats, ratios to the plain model);
- :mod:`~windowkv.bench.report`, :mod:`~windowkv.bench.plot`: table, JSON and PNG.
"""

from windowkv.bench.measure import Sample, measure_generation
from windowkv.bench.prompts import bench_prompt
from windowkv.bench.runner import REFERENCE, BenchSettings, run_bench, summarize
from windowkv.bench.stats import Spread, ratio, spread

__all__ = ["REFERENCE", "BenchSettings", "Sample", "Spread", "bench_prompt", "measure_generation", "ratio",
           "run_bench", "spread", "summarize"]
