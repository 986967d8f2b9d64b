"""Quickstart (docs/index.md): WindowKV keeps a quarter of the review tokens inside model.generate()."""

# --8<-- [start:quickstart]
from windowkv import Policy
from windowkv.models import load_model

model, tokenizer = load_model()  # the embedded SmolLM2-135M-Instruct, or any HF model id / local path
policy = Policy.from_preset("windowkv", budget=0.25)  # keep 25% of each layer's review tokens on average

filler = "The grass is green. The sky is blue. The sun is yellow. Here we go. " * 20
document = filler + "The special magic number is 7481. " + filler
messages = [{"role": "user", "content": document + "\nWhat is the special magic number?"}]
inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
with policy.apply(model, tokenizer) as handle:  # the task classifier reads the prompt: profile "qa"
    out = model.generate(**inputs, max_new_tokens=16, do_sample=False)
print(tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
print(handle.last_run.kept_tokens())  # prompt tokens kept in each layer's cache (per row)
# --8<-- [end:quickstart]

run = handle.last_run
assert run.predictions[0].label == "qa"
prompt_length = inputs["input_ids"].shape[1]
kept = [row[0] for row in run.kept_tokens()]
assert all(k < prompt_length for k in kept), kept
# on average over layers, at most 25% of the review tokens plus the 32-token suffix
review = prompt_length - 32
assert sum(k - 32 for k in kept) <= 0.25 * review * len(kept)
