"""The example plugin's scorer, used from a config file and a preset (docs/tutorials/write-a-scorer.md).

Needs the example distribution installed: pip install -e plugins/windowkv-example-scorer
"""

# --8<-- [start:use]
from windowkv import Policy, load_policy
from windowkv.models import load_model

policy = load_policy("value_norm.yaml")  # scorer: {type: value_norm, norm_ord: 2.0}
print(repr(policy.scorer))  # ValueNormScorer(norm_ord=2.0)
preset = Policy.from_preset("windowkv_value_norm", budget=0.25)  # the plugin's own preset
assert preset.scorer == policy.scorer

model, tokenizer = load_model()
inputs = tokenizer("Summarize the report. " + "Sales rose in May and fell in June. " * 40, return_tensors="pt")
with policy.apply(model, tokenizer) as handle:
    model.generate(**inputs, max_new_tokens=4, do_sample=False)
print(handle.last_run.predictions[0].label, handle.last_run.kept_tokens()[0])  # profile, kept tokens of layer 0
# --8<-- [end:use]

assert handle.last_run.predictions[0].label == "other"
assert handle.last_run.kept_tokens()[0][0] < inputs["input_ids"].shape[1]
