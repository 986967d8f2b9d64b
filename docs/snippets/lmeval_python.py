"""lm-evaluation-harness with a windowkv policy, from Python (docs: Evaluate with lm-evaluation-harness)."""

# --8<-- [start:evaluate]
from lm_eval import simple_evaluate
from lm_eval.tasks import TaskManager

from windowkv.lmeval import WindowKVLM  # importing windowkv.lmeval registers the model "windowkv"
from windowkv.models import load_model

model, tokenizer = load_model()  # the embedded SmolLM2-135M-Instruct (any model or hub id works)
tasks = TaskManager(include_path="lmeval_task", include_defaults=False)
scores = {}
for budget in (100_000, 32):  # 100_000 keeps every token: the scores of plain `hf`
    lm = WindowKVLM(pretrained=model, tokenizer=tokenizer, policy="snapkv", budget=budget, batch_size=2)
    out = simple_evaluate(model=lm, tasks=["magic_numbers"], task_manager=tasks, log_samples=True)
    scores[budget] = [s["filtered_resps"][0][0] for s in out["samples"]["magic_numbers"]]
    print(budget, out["results"]["magic_numbers"])
# --8<-- [end:evaluate]

# --8<-- [start:compare]
assert scores[100_000] != scores[32]  # compression changes the log-likelihoods
# --8<-- [end:compare]
