"""An example windowkv benchmark plugin: the ``kv_retrieval`` task and the ``value_exact`` metric."""

from windowkv_example_task.kv_retrieval import KVRetrievalTask, ValueExactMetric

__all__ = ["KVRetrievalTask", "ValueExactMetric"]
__version__ = "0.1.0"
