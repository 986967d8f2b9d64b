"""windowkv's built-in components, registered as an ordinary plugin (entry point ``builtins``)."""

from __future__ import annotations

from windowkv.allocators import ArithmeticGroupBudget, PyramidBudget, UniformBudget
from windowkv.channel_pruners import ThinKPruner
from windowkv.classifiers import (
    DatasetClassifier,
    EmbeddingClassifier,
    EncoderClassifier,
    FixedClassifier,
    KeywordClassifier,
)
from windowkv.mergers import DropMerger, KeepKVMerger, KVMergerMerger, NearestMeanMerger
from windowkv.plugins.hookspecs import hookimpl
from windowkv.scorers import (
    CumulativeAttentionScorer,
    KeyNormScorer,
    PooledSuffixAttentionScorer,
    PositionScorer,
    RandomScorer,
    SuffixAttentionScorer,
)
from windowkv.selectors import (
    DBudgetSelector,
    HeadwiseTopKSelector,
    SinksRecentSelector,
    TokenTopKSelector,
    WindowAverageSelector,
    WindowMarginSelector,
    WindowMaxSelector,
)
from windowkv.quantizers import MiniKVQuantizer, UniformQuantizer
from windowkv.sharing import AllLayersSharing, GroupSharing, NoSharing


@hookimpl
def windowkv_register_scorers():
    return [SuffixAttentionScorer, PooledSuffixAttentionScorer, CumulativeAttentionScorer, KeyNormScorer,
            PositionScorer, RandomScorer]


@hookimpl
def windowkv_register_classifiers():
    return [FixedClassifier, KeywordClassifier, EmbeddingClassifier, EncoderClassifier, DatasetClassifier]


@hookimpl
def windowkv_register_selectors():
    return [WindowAverageSelector, WindowMaxSelector, TokenTopKSelector, SinksRecentSelector, HeadwiseTopKSelector,
            WindowMarginSelector, DBudgetSelector]


@hookimpl
def windowkv_register_sharing():
    return [NoSharing, GroupSharing, AllLayersSharing]


@hookimpl
def windowkv_register_allocators():
    return [UniformBudget, ArithmeticGroupBudget, PyramidBudget]


@hookimpl
def windowkv_register_mergers():
    return [DropMerger, NearestMeanMerger, KVMergerMerger, KeepKVMerger]


@hookimpl
def windowkv_register_quantizers():
    return [UniformQuantizer, MiniKVQuantizer]


@hookimpl
def windowkv_register_channel_pruners():
    return [ThinKPruner]


@hookimpl
def windowkv_register_policies():
    from windowkv.policies.baselines import BASELINE_PRESETS
    from windowkv.policies.compositions import COMPOSITION_PRESETS
    from windowkv.policies.presets import BUILTIN_PRESETS
    from windowkv.policies.windowkv_family import WINDOWKV_FAMILY_PRESETS

    return [*BUILTIN_PRESETS, *BASELINE_PRESETS, *WINDOWKV_FAMILY_PRESETS, *COMPOSITION_PRESETS]


@hookimpl
def windowkv_register_tasks():
    from windowkv.eval.tasks import (
        LONGBENCH_TASK_CLASSES,
        RULER_TASK_CLASSES,
        ListRecordsTask,
        NeedleProseTask,
        NeedleTask,
        ScbenchKvTask,
    )

    return [NeedleTask, NeedleProseTask, *RULER_TASK_CLASSES, *LONGBENCH_TASK_CLASSES, ListRecordsTask, ScbenchKvTask]


@hookimpl
def windowkv_register_metrics():
    from windowkv.eval.metrics.builtin import BUILTIN_METRICS

    return list(BUILTIN_METRICS)
