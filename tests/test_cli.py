"""The command line: every subcommand teaches with --help, lift writes loadable scenes,
and bad input is one line on stderr with exit code 2 (never a traceback)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from particles import load_scene
from worldline.cli import COMMANDS, app, main

from conftest import ASSETS, ROOT, SCENES


def registered():
    import typer.main

    return sorted(typer.main.get_command(app).commands)


def test_help_lists_and_teaches_every_registered_command(capsys):
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    for name in registered():
        assert name in top
        assert main([name, "--help"]) == 0
        text = capsys.readouterr().out
        assert "Usage" in text and len(text) > 200
    assert set(registered()) <= set(COMMANDS)


@pytest.mark.parametrize("path", SCENES, ids=[p.stem for p in SCENES])
def test_lift_every_shipped_scene(path, tmp_path, capsys):
    out = tmp_path / "scene.npz"
    assert main(["lift", str(path), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    scene, kp, edges = load_scene(out)
    assert f"{scene.num_particles} particles" in text
    assert kp is not None and kp.num_keypoints > 0
    # graph edges stay inside objects and within 2.5 spacings
    assert np.all(scene.object_id[edges[:, 0]] == scene.object_id[edges[:, 1]])
    d = np.linalg.norm(scene.positions[edges[:, 0]] - scene.positions[edges[:, 1]], axis=1)
    assert d.max() <= 2.5 * 2 * scene.radius + 1e-6


def test_lift_cloud_and_rgbd(tmp_path):
    assert main(["lift", str(ASSETS / "clouds" / "tabletop.ply"), "--spacing", "0.03", "--out", str(tmp_path / "c.npz")]) == 0
    scene, _, _ = load_scene(tmp_path / "c.npz")
    assert scene.radius == pytest.approx(0.015)
    assert main(["lift", "--rgbd", str(ASSETS / "rgbd" / "tabletop.npz"), "--material", "elastic", "--out",
                 str(tmp_path / "r.npz")]) == 0
    scene, _, _ = load_scene(tmp_path / "r.npz")
    assert scene.object_material == ("elastic", "elastic")


@pytest.mark.parametrize("args,words", [
    (["lift", "missing.toml", "--out", "x.npz"], "no such file"),
    (["lift", "--out", "x.npz"], "exactly one input"),
    (["lift", "BAD", "--out", "x.npz"], "object[0].size"),
    (["lift", "CLOUD", "--material", "jelly", "--out", "x.npz"], "--material"),
    (["lift", "TRUNC", "--out", "x.npz"], "truncated"),
    (["lift", "--no-such-flag"], "No such option"),
])
def test_bad_input_exits_2_with_one_line(args, words, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[world]\nspacing = 0.02\n[[object]]\nshape = "box"\nsize = [1, 2]\nmaterial = "rigid"\n')
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes((ASSETS / "rgbd" / "tabletop.npz").read_bytes()[:300])
    subst = {"BAD": str(bad), "CLOUD": str(ASSETS / "clouds" / "tabletop.ply"), "TRUNC": str(trunc),
             "x.npz": str(tmp_path / "x.npz")}
    args = [subst.get(a, a) for a in args]
    if words == "truncated":
        args = ["lift", str(trunc), "--out", subst["x.npz"]]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not (tmp_path / "x.npz").exists(), "nothing is written on bad input"


def test_console_entry_point_exit_code(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "worldline", "lift", str(tmp_path / "nope.toml"), "--out",
                           str(tmp_path / "o.npz")], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no such file" in proc.stderr
