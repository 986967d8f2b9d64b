"""One long context compressed once, then questions turn by turn (docs/lifecycle.md)."""

from windowkv import Policy, Session, WindowKVError
from windowkv.models import load_model

model, tokenizer = load_model()
document = "The archive opened in 1931. Its first keeper was Ada Lind. " * 40

# --8<-- [start:session]
policy = Policy.from_preset("windowkv", budget=0.25)
with Session(policy, model, tokenizer, context=document) as chat:   # prefill + compress, no question yet
    print(chat.ask("When did the archive open?", max_new_tokens=12))
    print(chat.ask("Who was its first keeper?", max_new_tokens=12))  # appended to the same compressed cache
    print(f"{chat.context_tokens} context tokens, {chat.kv_nbytes()} KV bytes held")
try:
    chat.ask("And after her?")
except WindowKVError as err:           # the session was closed: its cache is freed
    print(err)
# --8<-- [end:session]

assert len(chat.turns) == 2 and chat.cache is None
