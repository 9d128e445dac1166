"""worldline demo: the README's main command, end to end on the shipped scene and weights."""

from __future__ import annotations

import json

import numpy as np
import pytest

from particles import load_rollout
from worldline.cli import main
from worldline.cmd_demo import DEFAULT_CHECKPOINT, DEFAULT_SCENE

from conftest import ASSETS
from test_viz import column, read_rrd

STEPS = 90  # the whole push: the block reaches the cube at about frame 35


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(["demo", "--steps", str(STEPS), "--out-dir", str(out)])
    return code, buf.getvalue(), out


def test_demo_runs_on_shipped_assets(demo):
    code, text, out = demo
    assert DEFAULT_SCENE.exists() and DEFAULT_CHECKPOINT.exists()
    assert code == 0, text
    for name in ("demo.rrd", "demo.png", "truth.npz", "model.npz", "truth_report.json", "model_report.json",
                 "showcase.npz", "showcase_report.json", "showcase_labels.json", "showcase.rrd"):
        assert (out / name).is_file(), name
    assert "ground truth (Newton)" in text and "learned model (GNN)" in text and "position error" in text
    assert "missing:" not in text
    # it ends with a planned push on the object model, executed on Newton, that reaches the goal
    plan = json.loads((out / "plan" / "plan.json").read_text())
    assert plan["success"] and plan["final_position_error_m"] < 0.02, plan
    assert "MPC on the object-level model" in text and (out / "plan" / "plan.rrd").is_file()


def test_demo_rollouts_share_the_push_and_truth_is_clean(demo):
    _, _, out = demo
    truth, model = load_rollout(out / "truth.npz"), load_rollout(out / "model.npz")
    assert truth.num_frames == model.num_frames == STEPS + 1
    tool = truth.scene.kinematic
    # both follow the same prescribed tool motion: the model exactly, the truth's force-limited tool
    # within the give of its contacts (it is a driven body, see dynamics.sim.NewtonSimulator.step)
    np.testing.assert_allclose(model.positions[:, tool], truth.positions[:, tool], atol=0.1 * truth.scene.radius)
    assert np.ptp(truth.positions[:, tool, 0]) > 0.01, "the tool moves"
    # the Newton ground truth passes the critic
    report = json.loads((out / "truth_report.json").read_text())
    assert report["version"] == 1 and report["frames"] == STEPS + 1
    assert report["events"] == []
    # the learned model pushes the block into the cube and both move on, close to the truth,
    # and its rollout passes the critic too (no interpenetration, no bending, no floating)
    err = np.linalg.norm(model.positions[:, ~tool] - truth.positions[:, ~tool], axis=-1)
    assert err.mean() < truth.scene.radius and err[-1].max() < 3 * truth.scene.radius
    cube = truth.scene.object_id == truth.scene.object_name.index("cube")
    moved_truth = truth.positions[-1, cube, 0].mean() - truth.positions[0, cube, 0].mean()
    moved_model = model.positions[-1, cube, 0].mean() - model.positions[0, cube, 0].mean()
    assert moved_truth > 0.03 and moved_model > 0.5 * moved_truth
    assert json.loads((out / "model_report.json").read_text())["events"] == []


def test_demo_shows_the_critic_finding_each_injected_glitch_at_its_frame(demo):
    """The showcase: the truth once per category side by side, one glitch injected into each copy; the
    critic names each on its object within 3 frames of where it was injected, the terminal says so, and
    the showcase recording marks each event at its place from its first frame."""
    from critic import CATEGORIES

    _, text, out = demo
    labels = json.loads((out / "showcase_labels.json").read_text())
    report = json.loads((out / "showcase_report.json").read_text())
    assert sorted(lab["category"] for lab in labels) == sorted(CATEGORIES)
    for lab in labels:
        hits = [e for e in report["events"] if e["category"] == lab["category"] and e["object"] == lab["object"]]
        assert hits, lab
        assert min(abs(e["frame"] - lab["frame"]) for e in hits) <= 3, (lab, hits)
        assert f"injected {lab['category']:<11}" in text and "NOT FOUND" not in text
    assert len(report["events"]) == len(labels)  # nothing else cried wolf
    data = read_rrd(out / "showcase.rrd")
    for i, ev in enumerate(report["events"]):
        boxes = column(data, f"world/critic/{i}", "Boxes3D:centers")
        assert [f for f, _ in boxes] == [ev["frame"]]
        np.testing.assert_allclose(boxes[0][1][0], ev["location"], atol=1e-6)


def test_demo_recording_and_picture(demo):
    _, _, out = demo
    data = read_rrd(out / "demo.rrd")
    paths = set(data)
    assert "world/tool" in paths and "world/flow/predicted" in paths and "world/flow/truth" in paths
    assert any(p.startswith("world/objects/") for p in paths)
    from PIL import Image

    img = np.asarray(Image.open(out / "demo.png").convert("L"), np.float32) / 255.0
    assert img.std() > 0.05, "the picture is not blank"


def test_demo_without_model_says_what_is_missing(tmp_path, capsys):
    scene = ASSETS / "scenes" / "stack_knock.toml"
    assert main(["demo", "--scene", str(scene), "--no-model", "--steps", "6", "--out-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "missing: learned model" in text
    assert (tmp_path / "demo.rrd").is_file() and not (tmp_path / "model.npz").exists()


def test_demo_bad_input(tmp_path, capsys):
    assert main(["demo", "--scene", str(tmp_path / "none.toml"), "--out-dir", str(tmp_path)]) == 2
    assert main(["demo", "--checkpoint", str(tmp_path / "none.pt"), "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "none.toml" in err and "none.pt" in err and "Traceback" not in err
