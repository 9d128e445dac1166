"""``python -m worldline`` (also what ``torchrun -m worldline`` runs)."""

from worldline.cli import run

run()
