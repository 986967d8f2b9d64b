"""Bad model_args are refused before any model loads (docs: Evaluate with lm-evaluation-harness)."""

from windowkv.errors import ConfigError

# --8<-- [start:errors]
from windowkv.lmeval import WindowKVLM

for args in ("policy=snapkb", "policy=snapkv,budget=-3"):
    try:
        WindowKVLM.create_from_arg_string(args)
    except ConfigError as exc:
        print(exc)
# invalid windowkv config:
#   model_args.policy: unknown policy 'snapkb'. Did you mean 'snapkv'? Registered policies: adakv, ...
# invalid windowkv config:
#   model_args.budget: ...
# --8<-- [end:errors]
