"""Merge GNS-layout datasets split by split (issue 12's deformable benchmark data).

The deformable benchmark dataset is two ``worldline dataset`` runs merged, so each run keeps its own
kinds and held-out kinds (``--kinds`` draws uniformly from one list per run):

    worldline dataset --out /tmp/ds_def --scenes 48 --frames 80 --workers 1 --seed 21 \\
        --kinds elastic,plastic,cloth --heldout 8 --heldout-kinds heldout_materials
    worldline dataset --out /tmp/ds_rope --scenes 16 --frames 80 --workers 1 --seed 22 \\
        --kinds rope --heldout 4 --heldout-kinds rope_box
    PYTHONPATH=$PWD python bench/merge_datasets.py --out /tmp/ds_deform /tmp/ds_def /tmp/ds_rope

Every split of every input (train, valid, test, heldout) goes to the split of that name; the
statistics are recomputed from the merged train split (``particles.io.write_dataset``), and the
metadata records the inputs and their generator metadata. Prints one line per split.
"""

from __future__ import annotations

import argparse
from pathlib import Path

SPLITS = ("train", "valid", "test", "heldout")


def merge(out: Path, inputs: list[Path]) -> dict:
    """Write the merged dataset to ``out``; returns {split: trajectory count}."""
    from particles import load_dataset, read_metadata
    from particles.io import write_dataset

    splits: dict = {}
    sources = []
    for folder in inputs:
        meta = read_metadata(folder)
        sources.append({"folder": str(folder), **{k: meta.get(k) for k in ("generator", "seed", "scenes", "kinds",
                                                                           "heldout_kinds", "dropped_glitched",
                                                                           "dropped_by_category")}})
        for split in SPLITS:
            if (folder / f"{split}.npz").exists():
                splits.setdefault(split, []).extend(load_dataset(folder, split))
    write_dataset(out, splits, extra_metadata={"generator": "bench/merge_datasets.py", "merged_from": sources})
    return {k: len(v) for k, v in splits.items()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+", type=Path, help="dataset folders to merge")
    ap.add_argument("--out", required=True, type=Path, help="merged dataset folder to write")
    args = ap.parse_args(argv)
    for split, n in merge(args.out, args.inputs).items():
        print(f"{split}: {n} trajectories")


if __name__ == "__main__":
    main()
