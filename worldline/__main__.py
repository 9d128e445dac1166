"""``python -m worldline`` (also what ``torchrun -m worldline`` runs)."""

import sys

from worldline.cli import main

sys.exit(main())
