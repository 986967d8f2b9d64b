"""One uncompressed prefill per prompt, replayed under every policy: comparisons at a fraction of the cost.

At prefill every layer attends over the whole prompt whatever the policy; a policy only decides, after
each layer ran, what that layer's cache keeps. So the prefill's per-layer inputs, keys, values and the
first token's logits are the same for every policy. :func:`capture_prefill` runs the prompt once without
a policy and keeps them; :func:`replay_generate` feeds them to a policy's handle in the order a real
forward pass would (the attention pre-hook, the cache update, the post-hook, layer by layer), takes the
first token from the captured logits and decodes the rest on the compressed cache. The result equals
``model.generate`` under the policy, token for token (tested), for batch-1 prompts of a text task.

Timings of replayed rows are not those of a real prefill: ``prefill_seconds`` is the shared prefill's.
Memory: the captured prefill holds every layer's input (``L x hidden``) and keys and values.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from windowkv.eval.measure import Generation, ModelInfo, cache_argument, generation_config, run_outcome


@dataclass
class CapturedPrefill:
    """What every policy's prefill shares for one prompt (batch 1)."""

    input_ids: torch.Tensor  # [1, L]
    inputs: list[tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]]  # per layer: hidden [1, L, d], (cos, sin)
    keys: list[torch.Tensor]  # per layer [1, H_kv, L, D]
    values: list[torch.Tensor]
    first_logits: torch.Tensor  # [1, vocab]
    seconds: float


def capture_prefill(model: Any, input_ids: torch.Tensor) -> CapturedPrefill:
    """Run the prompt once without any policy and keep what the policies' prefills share."""
    from transformers import DynamicCache

    from windowkv.hf.architectures import attention_layers

    layers = attention_layers(model)
    inputs: dict[int, tuple[Any, Any]] = {}

    def pre(module: Any, args: tuple, kwargs: dict[str, Any]) -> None:
        hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        inputs[module.layer_idx] = (hidden, kwargs["position_embeddings"])

    handles = [m.register_forward_pre_hook(pre, with_kwargs=True) for m in layers]
    cache = DynamicCache(config=model.config)
    start = time.perf_counter()
    try:
        with torch.no_grad():
            out = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), use_cache=True,
                        logits_to_keep=1, **cache_argument(model, cache))
    finally:
        for h in handles:
            h.remove()
    seconds = time.perf_counter() - start
    return CapturedPrefill(input_ids, [inputs[i] for i in range(len(layers))],
                           [cache.layers[i].keys for i in range(len(layers))],
                           [cache.layers[i].values for i in range(len(layers))], out.logits[:, -1], seconds)


def replay_prefill(handle: Any, model: Any, captured: CapturedPrefill) -> Any:
    """A cache compressed by ``handle``'s policy from ``captured``, as a real prefill under it would leave it."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    handle._model_pre_hook(model, (), {"input_ids": captured.input_ids, "past_key_values": cache})
    for module in handle.layers:
        idx = module.layer_idx
        hidden, position_embeddings = captured.inputs[idx]
        kwargs = {"hidden_states": hidden, "position_embeddings": position_embeddings, "attention_mask": None,
                  "past_key_values": cache}
        handle._attention_pre_hook(module, (), kwargs)
        cache.update(captured.keys[idx], captured.values[idx], idx)
        handle._attention_post_hook(module, (), kwargs, None)
    return cache


def replay_generate(model: Any, tokenizer: Any, handle: Any, captured: CapturedPrefill, *,
                    max_new_tokens: int) -> Generation:
    """Greedy generation under ``handle``'s policy from a captured prefill (see the module docstring)."""
    start = time.perf_counter()
    handle.last_run = None
    with torch.no_grad():
        cache = replay_prefill(handle, model, captured)
        first = captured.first_logits.argmax(-1, keepdim=True)  # [1, 1]
        new_ids = first[0].tolist()
        eos = model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, (list, tuple)) else [eos]) if eos is not None else set()
        if max_new_tokens > 1 and new_ids[0] not in eos:
            ids = torch.cat([captured.input_ids, first.to(captured.input_ids.device)], dim=-1)
            config = generation_config(model, max_new_tokens - 1, tokenizer.pad_token_id)
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config,
                                 **cache_argument(model, cache))
            new_ids = out[0, captured.input_ids.shape[1]:].tolist()
    seconds = time.perf_counter() - start
    prompt_tokens = int(captured.input_ids.shape[1])
    return Generation(
        prediction=tokenizer.decode(new_ids, skip_special_tokens=True), prompt_tokens=prompt_tokens,
        new_tokens=len(new_ids), prefill_seconds=captured.seconds, decode_tokens_per_s=None,
        seconds=captured.seconds + seconds, peak_memory_bytes=None, memory_method=None, output_ids=new_ids,
        **run_outcome(handle.last_run, prompt_tokens, ModelInfo.of(model).num_layers),
    )


class SharedPrefill:
    """One example's prefill for the runner (``evaluate(shared_prefill=True)``), captured without any policy.

    Call :meth:`capture` before applying a policy; examples whose replay would not equal their ordinary
    generation (question after the compressed part, stop strings, forced length, longer than the context)
    are left to the ordinary path (:meth:`usable` is False).
    """

    def __init__(self, model: Any, tokenizer: Any, example: Any, *, ignore_eos: bool = False):
        from windowkv.eval.examples import render_prompt, uses_chat_template
        from windowkv.eval.needle_prose import context_tokens

        self.model, self.tokenizer, self.example = model, tokenizer, example
        chat = uses_chat_template(tokenizer, example)
        text = render_prompt(tokenizer, example, warn=False)
        self.input_ids = tokenizer(text, return_tensors="pt", add_special_tokens=not chat)["input_ids"]
        limit = ModelInfo.of(model).max_positions
        fits = limit is None or self.input_ids.shape[1] + example.max_new_tokens <= limit
        self._usable = (fits and not ignore_eos and not example.stop_strings
                        and context_tokens(tokenizer, text, example) is None)
        self._captured: CapturedPrefill | None = None

    def usable(self, example: Any) -> bool:
        """Whether ``example`` is this prefill's and a replay equals its ordinary generation."""
        return example is self.example and self._usable

    def capture(self) -> None:
        """Run the uncompressed prefill (no policy may be applied to the model now)."""
        if self._usable and self._captured is None:
            self._captured = capture_prefill(self.model, self.input_ids.to(self.model.device))

    def generate(self, handle: Any) -> Generation:
        if self._captured is None:
            raise RuntimeError("SharedPrefill.capture() must run before a policy is applied")
        return replay_generate(self.model, self.tokenizer, handle, self._captured,
                               max_new_tokens=self.example.max_new_tokens)
