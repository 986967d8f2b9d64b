"""``python -m windowkv``: the command line (also what ``accelerate launch -m windowkv`` and ``torchrun -m windowkv`` run)."""

from windowkv.cli import main

main()
