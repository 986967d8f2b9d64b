"""Fixtures for the lm-evaluation-harness tests: a tiny model on disk and lm-eval models built from it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("lm_eval", reason="the lm-eval extra is not installed (pip install 'windowkv[lmeval]')")

#: local-file lm-eval tasks (JSONL + YAML), read with lm-eval's own TaskManager; no hub access
TASKS_DIR = Path(__file__).parent / "tasks"


@pytest.fixture(scope="session", autouse=True)
def _offline(tmp_path_factory):
    """No hub: datasets read the local JSONL only, caches go to a temporary directory."""
    old = {k: os.environ.get(k) for k in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_CACHE")}
    os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1",
                      HF_DATASETS_CACHE=str(tmp_path_factory.mktemp("hf-datasets")))
    yield
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True)
def _no_environment_report(monkeypatch):
    """lm-eval's results carry torch's environment report (``pip list``, GPU probes): seconds per run on a
    busy machine and nothing these tests read."""
    import lm_eval.evaluator

    monkeypatch.setattr(lm_eval.evaluator, "add_env_info", lambda results: None)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from tests.eval.tiny_model import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("lmeval-tiny") / "model", layers=2)


@pytest.fixture
def in_tasks_dir(monkeypatch):
    """lm-eval resolves the tasks' ``data_files`` against the working directory."""
    monkeypatch.chdir(TASKS_DIR)
    return TASKS_DIR


def make_lm(name: str, pretrained, **model_args):
    """An lm-eval model (``hf`` or ``windowkv``) built from an argument string, as lm-eval's CLI does."""
    import windowkv.lmeval  # noqa: F401  (registers windowkv)
    from lm_eval.api.registry import get_model

    args = ",".join(f"{k}={v}" for k, v in {"pretrained": pretrained, **model_args}.items())
    return get_model(name).create_from_arg_string(args, {"device": "cpu"})
