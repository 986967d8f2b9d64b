"""One long context compressed once, then many questions: a multi-turn session on one compressed KV cache.

::

    with Session(policy, model, tokenizer, context=document) as chat:   # prefill + compress once
        chat.ask("Who opened the archive?")                              # appended to the same cache
        chat.ask("And when?")

The context is prefilled **alone** (its own user message), so the compression is query-agnostic: the
questions are not known when the policy chooses what to keep (SCBench's shared-context setting, Li et
al., arXiv 2412.10319). Each :meth:`Session.ask` appends a user turn to the history and generates the
answer greedily on the compressed cache (the policy's ``on_new_turn`` hook runs, and decode-time
compression keeps working); the answer stays in the history for the next turns.

Bad use is refused with :class:`~windowkv.errors.WindowKVError`: a session continued after
:meth:`Session.close` (its cache was freed), and a session resumed from a cache another policy or model
compressed.
"""

from __future__ import annotations

import json
from typing import Any

import torch
from torch import Tensor

from windowkv.cache import CompressedLayer
from windowkv.errors import WindowKVError


def cache_nbytes(cache: Any) -> int:
    """Key/value bytes a transformers cache holds, read from its tensors (compressed layers count their own)."""
    total = 0
    for layer in getattr(cache, "layers", ()) if cache is not None else ():
        if isinstance(layer, CompressedLayer):
            total += layer.kv_nbytes()
        elif getattr(layer, "keys", None) is not None:
            total += sum(t.numel() * t.element_size() for t in (layer.keys, layer.values))
    return total


def _owner_name(owner: Any) -> str:
    try:
        return repr(json.loads(owner[1]).get("name"))
    except (TypeError, ValueError, IndexError, AttributeError):
        return "unknown"


class Session:
    """A compressed context answering questions turn by turn.

    Args:
        policy: the compression policy (any :class:`windowkv.Policy` or registered method).
        model: a transformers causal LM.
        tokenizer: its tokenizer; with a chat template, the context and every question are user messages.
        context: the long text, prefilled and compressed once.
        task: force the policy's task profile (skips the classifier).
        cache, history: resume a session from its compressed cache and token ids ``[1, T]`` (e.g. a
            :meth:`snapshot`); the cache must have been compressed by this policy on this model.

    Attributes:
        cache: the compressed KV cache (``None`` once closed).
        history: ``[1, T]`` token ids seen so far: context, questions and answers.
        context_tokens: tokens of the context turn.
        turns: the ``(question, answer)`` pairs so far.
    """

    def __init__(self, policy: Any, model: Any, tokenizer: Any, context: str | None = None, *,
                 task: str | None = None, cache: Any = None, history: Tensor | None = None) -> None:
        if (context is None) == (cache is None):
            raise ValueError("give either context= (a new session) or cache= and history= (resume one)")
        self.policy, self.model, self.tokenizer = policy, model, tokenizer
        self.handle = policy.apply(model, tokenizer, task=task)
        self.turns: list[tuple[str, str]] = []
        self._closed = False
        try:
            if cache is not None:
                if history is None:
                    raise ValueError("resuming a session needs history= (the token ids the cache has seen)")
                self._check_cache(cache, history)
                self.cache, self.history = cache, history
            else:
                self.cache, self.history = self._prefill(context)
        except BaseException:
            self.handle.remove()
            raise
        self.context_tokens = int(self.history.shape[1])

    # ------------------------------------------------------------------ turns

    def ask(self, question: str, max_new_tokens: int = 32, answer_prefix: str = "") -> str:
        """Append ``question`` as a user turn, generate the answer greedily and keep it in the history.

        Args:
            question: the user message.
            max_new_tokens: generation length (tokens).
            answer_prefix: text the assistant's turn starts with (the model continues it; it is part
                of the history but not of the returned answer).

        Returns:
            The generated answer (special tokens removed).

        Raises:
            WindowKVError: the session was closed (its cache was freed).
        """
        if self._closed or self.cache is None:
            raise WindowKVError("this session was closed and its compressed cache freed; start a new Session "
                                "(or keep it open while you ask)")
        turn = self._encode(self._turn_text(question) + answer_prefix)
        ids = torch.cat([self.history, turn.to(self.history.device)], dim=-1)
        out = self.model.generate(ids, attention_mask=torch.ones_like(ids), past_key_values=self.cache,
                                  max_new_tokens=max_new_tokens, do_sample=False, return_dict_in_generate=True,
                                  pad_token_id=self._pad_id())
        self.history, self.cache = out.sequences, out.past_key_values
        answer = self.tokenizer.decode(out.sequences[0, ids.shape[1]:], skip_special_tokens=True)
        self.turns.append((question, answer))
        return answer

    def kv_nbytes(self) -> int:
        """Key/value bytes the session's cache holds (read from its tensors; 0 once closed)."""
        return cache_nbytes(self.cache)

    def close(self) -> None:
        """Free the cache and remove the policy's hooks from the model; later turns are refused."""
        if self._closed:
            return
        if self.cache is not None:
            self.handle.end_request(self.cache)
        self.cache = None
        self._closed = True
        self.handle.remove()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _prefill(self, context: str) -> tuple[Any, Tensor]:
        from transformers import DynamicCache

        ids = self._encode(self._context_text(context))
        device = next(self.model.parameters()).device
        ids = ids.to(device)
        cache = DynamicCache(config=self.model.config)
        with torch.no_grad():
            self.model(input_ids=ids, attention_mask=torch.ones_like(ids), past_key_values=cache, use_cache=True)
        return cache, ids

    def _check_cache(self, cache: Any, history: Tensor) -> None:
        layers = [layer for layer in getattr(cache, "layers", ()) if isinstance(layer, CompressedLayer)]
        if layers and layers[0].owner != self.handle.owner:
            raise WindowKVError(
                f"this cache was compressed by policy {_owner_name(layers[0].owner)} (or another model): a turn "
                f"cannot be appended with policy {self.policy.name!r}; resume it with the policy and model that "
                "compressed it")
        if cache.get_seq_length() > history.shape[1]:
            raise ValueError(f"the cache has seen {cache.get_seq_length()} tokens but history holds "
                             f"{history.shape[1]}: pass the session's full history")

    def _chat(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def _context_text(self, context: str) -> str:
        if not self._chat():
            return context
        return self.tokenizer.apply_chat_template([{"role": "user", "content": context}], tokenize=False)

    def _turn_text(self, question: str) -> str:
        """The text of a new user turn after the history, as the chat template writes it (the previous
        answer closed first)."""
        if not self._chat():
            return "\n" + question + "\n"
        render = self.tokenizer.apply_chat_template
        before_msgs = [{"role": "user", "content": "\x00"}]
        if self.turns:
            before_msgs.append({"role": "assistant", "content": "\x01"})
        before = render(before_msgs, tokenize=False)
        after = render([*before_msgs, {"role": "user", "content": question}], tokenize=False,
                       add_generation_prompt=True)
        text = after[len(before):] if after.startswith(before) else after
        if self.turns:  # close the previous answer as the template does (its EOS may already be there)
            closing = before.split("\x01", 1)[1]
            eos = getattr(self.tokenizer, "eos_token", None)
            if eos and closing.startswith(eos) and int(self.history[0, -1]) == self.tokenizer.eos_token_id:
                closing = closing[len(eos):]
            text = closing + text
        return text

    def _encode(self, text: str) -> Tensor:
        return self.tokenizer(text, return_tensors="pt", add_special_tokens=not self._chat())["input_ids"]

    def _pad_id(self) -> int | None:
        pad = getattr(self.tokenizer, "pad_token_id", None)
        return pad if pad is not None else getattr(self.tokenizer, "eos_token_id", None)
