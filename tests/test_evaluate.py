"""worldline evaluate (issue 14): the policy interface, failure capture, determinism, a policy
known to fail, the report's numbers against a hand count, and bad policy modules."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from dynamics.policy import (EpisodeSpec, PackedStepper, build_report, episode_seed, load_policy, parse_target,
                             pearson, run_model_episodes, spearman, wilson_interval)
from dynamics.tasks import ConstraintsBackend, ControllerFailed, Task
from worldline.cli import main

ASSETS = Path(__file__).resolve().parents[1] / "assets"

# a 3 x 3 x 3 block at the origin, the pusher 7 cm to its +x side, the goal 10 cm to its -x side
TINY = """[world]
spacing = 0.02
ground = 0.0
seed = 0

[[object]]
name = "block"
shape = "box"
size = [0.06, 0.06, 0.06]
position = [0.0, 0.0, 0.03]
material = "rigid"
density = 800.0
friction = 0.5

[tool]
shape = "pusher"
size = [0.02, 0.08, 0.06]
path = [{{ t = 0.0, position = [{tx}, 0.0, 0.032] }}]

[goal]
object = "block"
position = [{gx}, 0.0]
tolerance = 0.02
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tasks")
    (d / "a_minus_x.toml").write_text(TINY.format(tx=0.07, gx=-0.10))
    (d / "b_plus_x.toml").write_text(TINY.format(tx=-0.07, gx=0.09))
    return d


@pytest.fixture(scope="module")
def bad_policies(tmp_path_factory):
    d = tmp_path_factory.mktemp("policies")
    (d / "bad_policies.py").write_text(
        "import numpy as np\n"
        "from dynamics.policies import straight_push\n"
        "def crash_at_5(obs):\n"
        "    if obs['frame'] >= 5:\n"
        "        raise RuntimeError('motor fault')\n"
        "    return straight_push(obs)\n"
        "def wrong_shape(obs):\n"
        "    return np.zeros(2)\n"
        "def nan_target(obs):\n"
        "    return {'position': [float('nan'), 0.0, 0.03]}\n"
        "def wrong_way(obs):\n"
        "    # straight_push toward the goal mirrored through the object's centre: away from the goal\n"
        "    g = dict(obs['goal'])\n"
        "    k = list(obs['object_names']).index(g['object'])\n"
        "    c = obs['positions'][obs['object_id'] == k].mean(0)\n"
        "    g['position'] = [2 * c[0] - g['position'][0], 2 * c[1] - g['position'][1]]\n"
        "    return straight_push(dict(obs, goal=g))\n")
    (d / "boom.py").write_text("raise ImportError('boom on import')\n")
    return d


def test_parse_target_accepts_the_documented_forms_and_refuses_others():
    pose = np.array([0.1, 0.2, 0.03, 0.5, 0.0])
    assert parse_target([1, 2, 3], pose).tolist() == [1, 2, 3, 0.5, 0.0]  # bare position: yaw, width held
    assert parse_target({"position": (1, 2, 3), "yaw": 1.0}, pose).tolist() == [1, 2, 3, 1.0, 0.0]
    for bad, words in (([1, 2], "shape (2,)"), ({"yaw": 1.0}, "without 'position'"), ([0, np.inf, 0], "non-finite"),
                       ("abc", "not numbers"), ({"position": [0, 0, 0], "yaw": "x"}, "not a number")):
        with pytest.raises(ControllerFailed, match=words.replace("(", r"\(").replace(")", r"\)")):
            parse_target(bad, pose)


def test_policy_crashing_mid_episode_fails_only_its_episode(tiny, bad_policies):
    """A policy that raises at frame 5, one returning a wrong shape and one returning NaN end their
    episodes as failed with the error; a good policy packed in the same model steps is unaffected
    (its rollout equals the one it has alone)."""
    task = Task.load(tiny / "a_minus_x.toml")
    mod = str(bad_policies / "bad_policies.py")
    names = ["crash_at_5", "wrong_shape", "nan_target"]
    fns = [load_policy(f"{mod}:{n}")[1] for n in names] + [load_policy("dynamics.policies:straight_push")[1]]
    specs = [EpisodeSpec(n, f, 0, 0, 0) for n, f in zip(names + ["straight_push"], fns)]
    make = lambda t: ConstraintsBackend(t.scene)  # noqa: E731
    res = run_model_episodes([task], specs, PackedStepper(make), max_steps=30)
    crash, shape, nan, good = res
    assert not crash.success and crash.steps == 5
    assert crash.info["error"] == "frame 5: the policy raised RuntimeError: motor fault"
    assert shape.steps == 0 and "shape (2,), expected (3,)" in shape.info["error"] and not shape.success
    assert nan.steps == 0 and "non-finite" in nan.info["error"]
    assert "error" not in good.info and good.steps == 30
    alone = run_model_episodes([task], specs[3:], PackedStepper(make), max_steps=30)[0]
    np.testing.assert_allclose(good.executed.positions, alone.executed.positions, atol=1e-6)
    # the crashing policy's 5 frames are straight_push's first 5
    np.testing.assert_allclose(crash.executed.positions, alone.executed.positions[:6], atol=1e-6)


def _evaluate(args, capsys):
    code = main(["evaluate"] + [str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_rerun_with_the_same_seed_gives_identical_reports(tiny, bad_policies, tmp_path, capsys):
    common = ["--policy", "dynamics.policies:random_policy", "--policy", "dynamics.policies:straight_push",
              "--policy", f"{bad_policies / 'bad_policies.py'}:crash_at_5", "--tasks", tiny / "a_minus_x.toml",
              "--backend", "constraints", "--truth", "--max-steps", "40", "--no-record"]
    outs = []
    for k, seed in enumerate((3, 3, 4)):
        out = tmp_path / f"run{k}"
        code, _, err = _evaluate(common + ["--seed", seed, "--out", out], capsys)
        assert code == 0, err
        outs.append(out)
    a, b, c = ((o / "report.json").read_bytes() for o in outs)
    assert a == b
    assert (outs[0] / "report.md").read_text() == (outs[1] / "report.md").read_text()
    rep = json.loads(a)
    rep_other = json.loads(c)
    ra = [e for e in rep["episodes"] if e["policy"] == "random_policy"][0]
    rc = [e for e in rep_other["episodes"] if e["policy"] == "random_policy"][0]
    assert ra["seed"] == episode_seed(3, 0, 0) != rc["seed"] == episode_seed(4, 0, 0)
    # the crash is a failed episode in both worlds, with its error; the run went on
    for side in ("model", "truth"):
        failed = rep["policies"]["crash_at_5"][side]["failed_episodes"]
        assert failed == [{"task": "a_minus_x", "episode": 0, "error": "frame 5: the policy raised RuntimeError: motor fault"}]
    assert "correlation" in rep and set(rep["correlation"]) >= {"pearson", "spearman", "same_ranking"}


def test_policy_known_to_fail_scores_zero_in_the_model_and_in_newton(tiny, bad_policies, tmp_path, capsys):
    """A scripted push away from the goal scores 0 on the shipped GNN and on Newton (ending farther
    than it started), while straight_push reaches the +x goal on Newton (the task is doable)."""
    out = tmp_path / "fail"
    code, _, err = _evaluate(["--policy", f"{bad_policies / 'bad_policies.py'}:wrong_way",
                              "--policy", "dynamics.policies:straight_push",
                              "--tasks", tiny, "--backend", "gnn", "--truth", "--max-steps", "90", "--out", out], capsys)
    assert code == 0, err
    rep = json.loads((out / "report.json").read_text())
    bad = rep["policies"]["wrong_way"]
    for side in ("model", "truth"):
        assert bad[side]["episodes"] == 2 and bad[side]["successes"] == 0 and bad[side]["success_rate"] == 0.0
        assert bad[side]["mean_final_error_m"] > 0.095  # the goals start 9 and 10 cm away
    b = [e for e in rep["episodes"] if e["policy"] == "straight_push" and e["task"] == "b_plus_x"][0]
    assert b["truth"]["success"], b
    assert sorted(p.name for p in (out / "episodes").glob("*.rrd")) and (out / "report.md").exists()


def _rec(policy, task, ms, me, ts, te, glitch=None):
    return {"policy": policy, "task": task, "episode": 0, "seed": 0,
            "model": {"success": ms, "final_position_error_m": me, "final_yaw_error_deg": 0.0, "steps": 10,
                      "error": None, "glitched": glitch is not None, "critic_events": int(glitch is not None),
                      "first_event": glitch},
            "truth": {"success": ts, "final_position_error_m": te, "final_yaw_error_deg": 0.0, "steps": 10,
                      "error": None}}


def test_report_numbers_match_a_hand_count():
    """Three policies on three tasks, one glitched episode: rates, Wilson intervals, mean errors,
    rankings and correlations against values worked out by hand."""
    ev = {"category": "teleport", "frame": 7, "object": 0, "message": "jumped"}
    eps = [_rec("A", "t1", True, 0.01, True, 0.01), _rec("A", "t2", True, 0.01, True, 0.01),
           _rec("A", "t3", False, 0.04, True, 0.01),
           _rec("B", "t1", True, 0.01, True, 0.01), _rec("B", "t2", False, 0.05, False, 0.06, ev),
           _rec("B", "t3", False, 0.03, False, 0.05),
           _rec("C", "t1", False, 0.09, False, 0.08), _rec("C", "t2", False, 0.10, False, 0.10),
           _rec("C", "t3", False, 0.11, False, 0.12)]
    rep = build_report(eps, ["A", "B", "C"], ["t1", "t2", "t3"], {})
    a, b, c = (rep["policies"][p] for p in "ABC")
    assert (a["model"]["successes"], a["truth"]["successes"], b["model"]["successes"], c["truth"]["successes"]) == (2, 3, 1, 0)
    assert a["model"]["success_rate"] == pytest.approx(2 / 3)
    # Wilson 95 % of 2/3 by hand: (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n) = (0.2077, 0.9385)
    assert a["model"]["wilson_95"] == pytest.approx([0.2077, 0.9385], abs=1e-4)
    assert wilson_interval(0, 3)[0] == 0.0 and wilson_interval(0, 3)[1] == pytest.approx(0.5615, abs=1e-4)
    assert b["model"]["mean_final_error_m"] == pytest.approx(0.03)
    assert (b["model"]["glitched_episodes"], a["model"]["glitched_episodes"]) == (1, 0)
    assert rep["glitched"] == [{"policy": "B", "task": "t2", "episode": 0, "first_event": ev}]
    assert rep["tasks"]["t3"]["A"] == {"model": {"episodes": 1, "successes": 0, "mean_final_error_m": 0.04,
                                                 "glitched_episodes": 0},
                                       "truth": {"episodes": 1, "successes": 1, "mean_final_error_m": 0.01}}
    corr = rep["correlation"]
    # success rates model (2/3, 1/3, 0) vs truth (1, 1/3, 0): Pearson 9 / sqrt(84); ranks agree: Spearman 1
    assert corr["pearson"] == pytest.approx(9 / math.sqrt(84))
    assert corr["spearman"] == pytest.approx(1.0)
    assert corr["same_ranking"] and corr["same_top1"] and corr["ranking_model"] == ["A", "B", "C"]
    me = [e["model"]["final_position_error_m"] for e in eps]
    te = [e["truth"]["final_position_error_m"] for e in eps]
    assert corr["final_error_pearson"] == pytest.approx(np.corrcoef(me, te)[0, 1])
    # without B's glitched episode: model (2/3, 1/2, 0) vs truth (1, 1/2, 0): (1/3) / sqrt(78/324 * 1/2)
    w = corr["without_glitched"]
    assert w["episodes"] == 8 and w["success_rate_model"]["B"] == 0.5
    assert w["pearson"] == pytest.approx((1 / 3) / math.sqrt(78 / 324 * 0.5))
    # ties share ranks; a constant side has no correlation
    assert spearman([1, 1, 2], [1, 1, 2]) == pytest.approx(1.0) and pearson([1, 1, 1], [0, 1, 2]) is None


def test_unimportable_policy_module_exits_2_naming_it(tiny, bad_policies, tmp_path, capsys):
    for spec, words in (("no_such_module_xyz:act", "no_such_module_xyz"),
                        (f"{bad_policies / 'boom.py'}:act", "boom on import"),
                        ("dynamics.policies:no_such_fn", "no_such_fn"),
                        ("dynamics.policies", "MODULE:FUNCTION"),
                        ("dynamics.policies:SHIPPED", "not callable")):
        out = tmp_path / "never"
        code, _, err = _evaluate(["--policy", spec, "--tasks", tiny, "--backend", "constraints", "--out", out], capsys)
        assert code == 2, (spec, err)
        assert words in err and err.count("\n") == 1, err
        assert not out.exists()


def test_auto_backend_uses_the_object_model_on_rigid_tasks_and_the_gnn_on_sand(tiny):
    """--backend auto: the object model where every free body is rigid, the GNN elsewhere;
    --backend objects refuses a sand task naming the object and pointing at auto."""
    from dynamics.objects import ObjectBackend
    from dynamics.tasks import LearnedBackend
    from worldline.cmd_evaluate import BACKENDS
    from worldline.errors import BadInput

    rigid = Task.load(tiny / "a_minus_x.toml")
    sand = Task.load(sorted((ASSETS / "tasks" / "suite").glob("sand_*.toml"))[0])
    make = BACKENDS["auto"](None)
    assert isinstance(make(rigid), ObjectBackend)
    assert isinstance(make(sand), LearnedBackend)
    with pytest.raises(BadInput, match="auto"):
        BACKENDS["objects"](None)(sand)


def test_packed_object_stepping_equals_stepping_each_episode_alone(bad_policies):
    """The object backend (exact constraints on) steps every live episode of three different
    suite tasks (1 and 3 boxes) as one object batch, repacked when an episode ends (a policy that
    crashes at frame 5): every episode's rollout equals the one stepped on its own through
    ObjectBackend.predict, within float32 round-off."""
    from worldline.cmd_evaluate import BACKENDS

    tasks = [Task.load(ASSETS / "tasks" / "suite" / f"{n}.toml") for n in ("push_04", "push_05", "push_12")]
    make = BACKENDS["objects"](None)

    class Alone:  # the same backend without its packed step: PackedStepper falls back to predict
        def __init__(self, be):
            self.be, self.history = be, be.history

        def predict(self, *a):
            return self.be.predict(*a)

    fns = [load_policy("dynamics.policies:straight_push"), load_policy("dynamics.policies:random_policy"),
           load_policy(f"{bad_policies / 'bad_policies.py'}:crash_at_5")]
    specs = [EpisodeSpec(n, f, ti, 0, episode_seed(0, ti, 0)) for n, f in fns for ti in range(len(tasks))]
    packed_stepper = PackedStepper(make)
    packed = run_model_episodes(tasks, specs, packed_stepper, max_steps=40)
    alone = run_model_episodes(tasks, specs, PackedStepper(lambda t: Alone(make(t))), max_steps=40)
    assert [r.steps for r in packed] == [r.steps for r in alone]
    assert sorted({r.steps for r in packed}) == [5, 40]  # the crashing episodes left the batch at frame 5
    for p, a in zip(packed, alone):
        assert p.success == a.success and p.info.get("error") == a.info.get("error")
        np.testing.assert_allclose(p.executed.positions, a.executed.positions, atol=2e-5, rtol=0)
    moved = max(np.abs(r.executed.positions[-1] - r.executed.positions[0])[~t.scene.kinematic].max()
                for r, t in zip(packed[:3], tasks))
    # the tool reaches a box (push_05's approach moves one 4.8 mm by frame 40; before the tool's shape contacts
    # the network's drag of boxes the tool passed moved them 2-8 cm)
    assert moved > 0.002
    assert packed_stepper.steps == 40


def test_shipped_pushes_differ_as_designed_speed_and_offset(tiny):
    """The shipped set's knobs do what the policies say, seen in the commanded tool motion on a world
    that moves only the tool (so the push never ends): straight_push pushes at PUSH_SPEED (0.12 m/s),
    slow_push at SLOW_SPEED (0.045 m/s), and wide_offset_push pushes a full object half-width off the
    centre line where offset_push pushes 0.7 of it and open_loop_push on it."""
    from dynamics.policies import PUSH_SPEED, SLOW_SPEED
    from dynamics.policy import PolicyController
    from dynamics.tasks import run_episode

    task = Task.load(tiny / "b_plus_x.toml")  # block at the origin, 3 x 3 particles wide, goal along +x
    ti = task.tool.indices

    class ToolOnly:  # the world of this test: the tool's particles go where commanded, nothing else moves
        def step(self, state, nxt, ctrl, dt):
            nxt.positions[:] = state.positions
            nxt.positions[ti] = ctrl
            nxt.velocities[:] = 0.0

    def tool_path(name):
        fn = load_policy(f"dynamics.policies:{name}")[1]
        res = run_episode(task, PolicyController(fn, 0), world=ToolOnly(), max_steps=60)
        return res.executed.positions[:, ti].mean(1).astype(np.float64)

    tool = task.scene.positions[ti].astype(np.float64)
    d = np.linalg.norm(tool[:, None] - tool[None], axis=-1) + np.eye(len(ti))
    half_w = 0.02 + 0.5 * d.min()  # m: the block's half-width as the policies measure it (outer centres + r)
    for name, speed in (("straight_push", PUSH_SPEED), ("slow_push", SLOW_SPEED)):
        x = tool_path(name)
        v = np.linalg.norm(np.diff(x[15:30, :2], axis=0), axis=1) / task.dt  # the push (from frame 9 on)
        assert np.allclose(v, speed, rtol=0.02), (name, v)
        assert np.abs(x[15:30, 1]).max() < 1e-4 and np.all(np.diff(x[15:30, 0]) > 0)  # along +x on the centre line
    assert SLOW_SPEED < 0.5 * PUSH_SPEED
    lateral = {}
    for name in ("open_loop_push", "offset_push", "wide_offset_push"):
        x = tool_path(name)
        assert np.all(np.diff(x[20:40, 0]) > 0) and np.ptp(x[20:40, 1]) < 1e-5  # a straight push along +x
        lateral[name] = float(x[30, 1])
    # to the left (+y), within the approach's 2 mm landing tolerance
    for name, share in (("open_loop_push", 0.0), ("offset_push", 0.7), ("wide_offset_push", 1.0)):
        assert abs(lateral[name] - share * half_w) < 2e-3, (lateral, half_w)
    assert lateral["wide_offset_push"] > lateral["offset_push"] + 0.2 * half_w, lateral
