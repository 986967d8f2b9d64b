"""The plugin module named by the ``windowkv`` entry point: one function per ``windowkv_register_*`` hook."""

from __future__ import annotations

from windowkv import hookimpl

from windowkv_example_task.kv_retrieval import KVRetrievalTask, ValueExactMetric


@hookimpl
def windowkv_register_tasks():
    return [KVRetrievalTask]


@hookimpl
def windowkv_register_metrics():
    return [ValueExactMetric]
