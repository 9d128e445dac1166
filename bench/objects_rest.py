"""Does a resting box stay put in the object model? Creep of a settled box with the tool far away.

A 8 x 10 x 6 cm box (800 kg/m^3, friction 0.5, yaw 0.4 rad) rests on the ground, the pusher 20 cm
away and still; each object-model checkpoint rolls it 100 frames (alone and with the exact
constraints) from a history at rest. Newton leaves it where it is; the table gives how far the
model moves its centre (mm) and turns it (deg).

    PYTHONPATH=$PWD python bench/objects_rest.py --objects assets/weights/objects_push.pt --objects RUN/model.pt

Prints one table; never collected as a test.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from dynamics.objects import angular_velocity, fit_poses, load_object_model, object_rollout, pack_objects
from dynamics.sim import ObjectShape
from dynamics.sim.scenes import PrimitiveSpec, build_setup


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objects", action="append", required=True, help="object-model checkpoint (repeatable)")
    ap.add_argument("--frames", type=int, default=100)
    args = ap.parse_args()
    torch.set_num_threads(1)
    yaw = 0.4
    box = ObjectShape("box", (0.04, 0.05, 0.03), position=(0, 0, 0.03), rotation=(0, 0, np.sin(yaw / 2), np.cos(yaw / 2)))
    setup = build_setup([PrimitiveSpec("box", "rigid", box, density=800.0, friction=0.5)], 0.01,
                        tool=ObjectShape("box", (0.01, 0.04, 0.03), position=(-0.2, 0, 0.032)),
                        tool_path=np.tile([-0.2, 0.0, 0.032], (args.frames + 1, 1)))
    sc = setup.scene
    x = torch.tensor(sc.positions, dtype=torch.float32)
    print(f"| checkpoint | constraints | centre moved in {args.frames} frames | turned |")
    print("|---|---|---|---|")
    for path in args.objects:
        model = load_object_model(path)
        batch = pack_objects([sc], model.config.dt)
        hist = x[None].repeat(model.config.history + 1, 1, 1)
        for collide in (False, True):
            with torch.no_grad():
                pred = object_rollout(model, batch, hist, args.frames, x[None].repeat(args.frames, 1, 1), collide=collide)
            c, rot = fit_poses(batch, torch.cat([x[None], pred]))
            moved = float((c[-1, 0] - c[0, 0]).norm()) * 1000
            turned = float(angular_velocity(rot[-1:, 0], rot[:1, 0]).norm()) * 180 / np.pi
            print(f"| {path} | {'yes' if collide else 'no'} | {moved:.1f} mm | {turned:.1f} deg |")


if __name__ == "__main__":
    main()
