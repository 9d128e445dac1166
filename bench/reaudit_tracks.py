"""Re-audit the films a ``bench/critic_tracks.py --out DIR`` run left in ``DIR`` (its ``manifest.json``) with the
current critic, without filming again: clean files with any event, and recall per category by category and frame
(+-2 of the label) only. The object check of ``critic_tracks.py`` needs each film's particle map, which the folder
does not keep, so this recall is never lower than that bench's on the same code.

    PYTHONPATH=$PWD python bench/reaudit_tracks.py DIR
"""

from __future__ import annotations

import json
import sys
import warnings
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from critic.tracks import audit_tracks  # noqa: E402


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    warnings.filterwarnings("ignore")
    m = json.loads((Path(argv[0]) / "manifest.json").read_text())
    fps, fp = {}, defaultdict(list)
    for e in m["clean"]:
        fps[e["scene"]] = e["fps"]
        rep = audit_tracks(e["file"], fps=e["fps"])
        if rep.events:
            fp[(e["noise"], e["camera"])].append((Path(e["file"]).name, rep))
    print(f"clean files: {len(m['clean'])}, with any event: {sum(len(v) for v in fp.values())}")
    for _, items in sorted(fp.items()):
        for fname, rep in items:
            cats = Counter(x.category for x in rep.events)
            print(f"  FP {fname:32s}: " + ", ".join(f"{c} x{k}" for c, k in sorted(cats.items())) + "  first: "
                  + "; ".join(f"{x.category}@{x.frame} obj {x.object}" for x in rep.events[:3]))
    rows, missed = defaultdict(lambda: [0, 0]), []
    for e in m["injected"]:
        lab = e["label"]
        rep = audit_tracks(e["file"], fps=fps[e["scene"]])
        hit = any(x.category == lab["category"] and abs(x.frame - lab["frame"]) <= 2 for x in rep.events)
        rows[lab["category"]][0] += 1
        rows[lab["category"]][1] += hit
        if not hit:
            missed.append((Path(e["file"]).name, lab["category"], lab["frame"],
                           [(x.category, x.frame, x.objects) for x in rep.events[:4]]))
    print("category       n  recall (category and frame only)")
    for c, (k, f) in rows.items():
        print(f"{c:12s} {k:3d} {f / k:7.2f}")
    for x in missed:
        print("  missed", *x)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
