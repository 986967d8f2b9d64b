"""``windowkv-lm-eval`` / ``python -m windowkv.lmeval``: lm-eval's command line with ``--model windowkv``.

Every argument is lm-eval's (``run --model windowkv --model_args ... --tasks ...``); windowkv only registers
its model first.
"""

from __future__ import annotations


def main() -> None:
    import windowkv.lmeval  # noqa: F401  (registers the model)
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()


if __name__ == "__main__":  # pragma: no cover
    main()
