"""How a benchmark plugin tests itself with windowkv.testing (run: pytest plugins/windowkv-example-task/tests)."""

from windowkv.testing import check_metric_contract, check_task_contract, fresh_registries, small_tokenizer
from windowkv_example_task import KVRetrievalTask, ValueExactMetric, plugin


def test_kv_retrieval_keeps_the_task_contract():
    registries = fresh_registries(plugin)  # windowkv's built-ins and this plugin: its metric is registered
    tokenizer = small_tokenizer()
    check_task_contract(KVRetrievalTask(), tokenizer=tokenizer, lengths=[200, 300], registries=registries)
    check_task_contract(KVRetrievalTask(depth=0.0, key_length=6), tokenizer=tokenizer, lengths=[200],
                        registries=registries)


def test_value_exact_keeps_the_metric_contract():
    check_metric_contract(ValueExactMetric())
    assert ValueExactMetric()('"3fa9c2d1", then', ["3fa9c2d1"]) == 1.0


def test_plugin_registers_the_task_and_the_metric():
    registries = fresh_registries(plugin)
    assert registries["task"].get("kv_retrieval") is KVRetrievalTask
    assert registries["metric"].get("value_exact") is ValueExactMetric
