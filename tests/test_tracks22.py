"""Track audit (issue 15), tracks22: a resting body whose lower part the camera never saw is not hovering.

``tests/data/tracks/s6_slide_0_n0.00_c0.npz`` is the first 40 frames of ``bench/critic_tracks.py --seed 6``'s
``slide_0_n0.00_c0.npz`` (static camera with extrinsics, 60 fps, noise 0): a slider comes to rest beside a large
body (object 1 of the audit: 218 tracks, about 50 x 50 x 30 cm) that rests on the ground all along, and whose tracks
end 5 cm above the ground: its lower part stays hidden behind its own front.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from critic.tracks import Tracks, audit_tracks, load_tracks, support_hidden, tracks_to_rollout

DATA = Path(__file__).resolve().parent / "data" / "tracks"
FILE = DATA / "s6_slide_0_n0.00_c0.npz"
FPS = 60.0


def _large_body(ts):
    k = int(np.argmax([len(f.tracks) for f in ts.fits]))
    f = ts.fits[k]
    low = min(float((np.einsum("ij,nj->ni", f.rot[t], f.body) + f.centre[t])[:, 2].min())
              for t in range(len(f.posed)) if f.posed[t])
    return k, low - ts.frame.ground


def test_resting_body_with_hidden_lower_part_is_not_floating():
    """The large body's tracks stop more than 3 r (over 5 cm) above the ground it rests on, so nothing under them touches
    anything; but under the body there is a column from the ground up to its lowest track that the camera cannot
    see (behind the body's own front), so a support may be there: no floating event (main raised floating@2)."""
    tr = load_tracks(FILE)
    ts = tracks_to_rollout(tr, FPS)
    k, gap = _large_body(ts)
    assert gap > 3.0 * ts.radius and gap > 0.05, gap  # the audit sees nothing under the tracks
    rep = audit_tracks(tr, fps=FPS)
    assert rep.events == (), [(e.category, e.frame, e.object) for e in rep.events]


def test_same_body_hovering_in_view_is_floating():
    """The near miss: the same body's tracks lifted 0.2 m in the world (the camera's up, from the extrinsics), so
    it hovers 25 cm above the ground, which the camera sees past its edge under every column: floating from the
    start, and the support test finds the gap seen."""
    tr = load_tracks(FILE)
    ts = tracks_to_rollout(tr, FPS)
    k, _ = _large_body(ts)
    R = (tr.w2c if tr.w2c.ndim == 2 else tr.w2c[0])[:3, :3]
    xyz = tr.xyz.copy()
    xyz[:, ts.fits[k].tracks] += (0.2 * R[:, 2]).astype(np.float32)  # world +z in camera coordinates
    lifted = Tracks(xyz, tr.visible, tr.intrinsics, tr.w2c)
    ts_l = tracks_to_rollout(lifted, FPS)
    rep = audit_tracks(lifted, fps=FPS)
    ev = [e for e in rep.events if e.category == "floating" and e.object == k]
    assert ev and ev[0].frame <= 4, [(e.category, e.frame, e.object) for e in rep.events]
    assert not support_hidden(ts_l, ev[0])
