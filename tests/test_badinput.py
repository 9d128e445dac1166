"""Every command survives bad input (issue 16): one line naming the file and the field, exit 2,
no traceback, nothing half-written; an unexpected error is one line and exit 3; Ctrl-C exits 130.

The corpus is ``tests/badinput_corpus.py`` (``python tests/badinput_corpus.py`` prints the counts).
Its cases run in-process through ``worldline.cli.main``; a few run as real subprocesses.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from worldline.cli import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, main

sys.path.insert(0, str(Path(__file__).resolve().parent))
from badinput_corpus import ROOT, build  # noqa: E402

_CORPUS = Path(tempfile.mkdtemp(prefix="worldline_badinput_"))
CASES = build(_CORPUS)
_OWN = [c for c in CASES if c.needs is None]
_CRITIC = {c.name: c for c in CASES if c.needs == "critic"}


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
    yield
    for p in _CORPUS.rglob("*"):  # read-only folders from a failed run
        if p.is_dir():
            p.chmod(0o755)
    shutil.rmtree(_CORPUS, ignore_errors=True)


def _deny_writes_under(folder: Path, monkeypatch) -> None:
    """Make ``folder`` read-only for this process. Not root: chmod 0o555. Root ignores folder
    permissions, so there the OS calls that create entries in it fail with EACCES, as they would."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return
    folder = str(folder.resolve())
    inside = lambda p: str(Path(os.fsdecode(p)).resolve()).startswith(folder + os.sep)  # noqa: E731
    real_open, real_mkdir, real_replace = os.open, os.mkdir, os.replace

    def deny(p):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(p))

    def fake_open(p, flags, *a, **kw):
        if flags & os.O_CREAT and inside(p):
            deny(p)
        return real_open(p, flags, *a, **kw)

    def fake_mkdir(p, *a, **kw):
        if inside(p):
            deny(p)
        return real_mkdir(p, *a, **kw)

    def fake_replace(src, dst, *a, **kw):
        if inside(dst):
            deny(dst)
        return real_replace(src, dst, *a, **kw)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    monkeypatch.setattr(os, "replace", fake_replace)


def _leftovers(case) -> list[str]:
    found = []
    for o in case.outputs:
        p = Path(o)
        if p.exists():
            found.append(str(p))
        if p.parent.is_dir():
            found += [str(q) for q in p.parent.glob(f".{p.name}*.tmp")]
    return found


def run_case(case, capsys, monkeypatch) -> tuple[int, str]:
    if case.readonly:
        _deny_writes_under(Path(case.readonly), monkeypatch)
    try:
        code = main(list(case.args))
    finally:
        if case.readonly and os.geteuid() != 0:
            Path(case.readonly).chmod(0o755)
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out, f"{case.id}: traceback\n{err}"
    assert code in case.codes, f"{case.id}: exit {code}, expected {case.codes}\n{err[-2000:]}"
    if code == EXIT_BAD_INPUT:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, f"{case.id}: expected one error line, got {len(lines)}:\n{err}"
        for word in case.words:
            assert word in lines[0], f"{case.id}: the error line does not name {word!r}: {lines[0]}"
        assert not _leftovers(case), f"{case.id}: left {_leftovers(case)}"
    return code, err


@pytest.mark.parametrize("case", _OWN, ids=[c.id for c in _OWN])
def test_bad_input(case, capsys, monkeypatch):
    run_case(case, capsys, monkeypatch)


def test_corpus_covers_every_command_and_kind():
    """The corpus holds, for every subcommand, the kinds of bad input issue 16 lists."""
    from badinput_corpus import counts

    n = counts(CASES)
    assert set(n) == {"lift", "simulate", "dataset", "train", "rollout", "audit", "view", "demo", "plan", "evaluate"}
    names = {c.command: set() for c in CASES}
    for c in CASES:
        names[c.command].add(c.name)
    for command in ("lift", "simulate", "rollout", "demo", "plan"):  # scene files
        for kind in ("random-bytes", "empty", "truncated-50", "folder", "world.spacing=nan", "world.spacing=inf",
                     "object.size=[1e+30, 1e+30, 1e+30]", "object.unknown-key", "world.spacing-missing"):
            assert f"scene:{kind}" in names[command], (command, kind)
    for kind in ("positions-strings", "positions-extra-dim", "positions-nan", "positions-inf", "positions-1e30",
                 "positions-empty", "positions-object", "unknown-key", "folder", "truncated-50"):
        assert f"rollout:{kind}" in names["audit"] and f"rollout:{kind}" in names["view"], kind
    assert "rollout-without-dt" in names["audit"] and "rollout:dt-missing" in names["view"]
    for kind in ("random-bytes", "empty", "truncated-50", "tensor", "custom-object", "folder"):
        assert f"checkpoint:{kind}" in names["rollout"] and f"checkpoint:{kind}" in names["plan"], kind
    for command in n:
        assert "output:read-only-folder" in names[command] or command == "audit" and \
            "output:read-only-folder" in names[command], command


# --------------------------------------------------------------------------- the cases of the issue


def test_mistyped_spacing_is_refused_before_allocation(tmp_path, capsys):
    """A 1 m box at spacing 0.0001 (1e12 particles) exits 2 within seconds naming world.spacing, the
    estimate and --max-particles, instead of allocating terabytes."""
    scene = tmp_path / "huge.toml"
    scene.write_text('[world]\nspacing = 0.0001\n[[object]]\nname = "box"\nshape = "box"\nsize = [1.0, 1.0, 1.0]\n'
                     'position = [0.0, 0.0, 0.5]\nmaterial = "rigid"\n')
    t0 = time.perf_counter()
    assert main(["lift", str(scene), "--out", str(tmp_path / "x.npz")]) == EXIT_BAD_INPUT
    assert time.perf_counter() - t0 < 5.0
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "world.spacing" in err and "1e+12 particles" in err and "--max-particles" in err and "huge.toml" in err
    assert not (tmp_path / "x.npz").exists()
    # the same scene at a sane spacing passes the guard; raising the limit lets a big one through
    scene.write_text(scene.read_text().replace("0.0001", "0.1").replace("[1.0, 1.0, 1.0]", "[0.3, 0.3, 0.3]"))
    assert main(["lift", str(scene), "--out", str(tmp_path / "x.npz"), "--max-particles", "27"]) == 0
    assert main(["lift", str(scene), "--out", str(tmp_path / "y.npz"), "--max-particles", "26"]) == EXIT_BAD_INPUT
    assert "27 particles" in capsys.readouterr().err


def test_estimate_matches_lifting_on_shipped_scenes():
    """estimate_particles is exact for boxes, sheets and ropes and an upper bound (within 3x) for
    curved shapes and meshes, on every shipped scene at its spacing and at half of it."""
    from dataclasses import replace

    from particles.lift import lift_scene
    from particles.scene_file import estimate_particles, load_scene_file

    for path in sorted((ROOT / "assets" / "scenes").glob("*.toml")):
        spec = load_scene_file(path)
        for spacing in (spec.spacing, spec.spacing / 2):
            s = replace(spec, spacing=spacing)
            est = estimate_particles(s)
            lifted = lift_scene(s).scene
            counts = np.bincount(lifted.object_id, minlength=lifted.num_objects)
            for k, (name, field, n) in enumerate(est.per_object):
                shape = s.objects[k].shape if k < len(s.objects) else "box"
                if shape in ("box", "sheet", "rope"):
                    assert n == counts[k], (path.name, name, n, counts[k])
                else:
                    assert counts[k] <= n <= 3 * counts[k], (path.name, name, n, counts[k])
            assert est.candidates >= est.total >= lifted.num_particles or est.total >= lifted.num_particles


def test_bad_checkpoint_is_one_line(tmp_path, capsys):
    """A .pt that is not a checkpoint gets one line naming the file and what is wrong, without torch's
    weights_only advice."""
    bad = tmp_path / "notes.pt"
    bad.write_bytes(b"these are not weights\n" * 10)
    scene = ROOT / "assets" / "scenes" / "push_blocks.toml"
    assert main(["rollout", str(scene), "--checkpoint", str(bad), "--out", str(tmp_path / "r.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "notes.pt" in err and "not a PyTorch checkpoint" in err
    assert "weights_only" not in err and "trust" not in err


def test_atomic_write_follows_the_umask(tmp_path):
    """Files written atomically get 0o666 & ~umask, as open() would give them, not mkstemp's 0o600."""
    from particles.io import atomic_write

    old = os.umask(0o027)
    try:
        p = atomic_write(tmp_path / "a.txt", lambda f: f.write(b"x"))
        assert stat.S_IMODE(p.stat().st_mode) == 0o640
        os.umask(0o002)
        p = atomic_write(tmp_path / "b.txt", lambda f: f.write(b"x"))
        assert stat.S_IMODE(p.stat().st_mode) == 0o664
        ref = tmp_path / "ref.txt"
        ref.write_bytes(b"x")
        assert stat.S_IMODE(ref.stat().st_mode) == stat.S_IMODE(p.stat().st_mode)
    finally:
        os.umask(old)
    assert not list(tmp_path.glob(".*.tmp"))


def test_atomic_write_leaves_nothing_on_interrupt(tmp_path):
    from particles.io import atomic_write

    def boom(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "x.npz", boom)
    assert list(tmp_path.iterdir()) == []


def test_error_handler_uses_public_api_only():
    """The last-resort handler must not import typer's private click copy (AttributeError in typer 0.29)."""
    text = (ROOT / "worldline" / "cli.py").read_text()
    assert "typer._click" not in text and "_click." not in text


def test_unexpected_error_in_process_is_one_line_exit_3(capsys, monkeypatch, tmp_path):
    import particles.lift

    def broken(spec):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(particles.lift, "lift_scene", broken)
    args = ["lift", str(ROOT / "assets" / "scenes" / "push_blocks.toml"), "--out", str(tmp_path / "x.npz")]
    monkeypatch.delenv("WORLDLINE_DEBUG", raising=False)
    assert main(args) == EXIT_INTERNAL
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "'worldline lift' failed" in err and "ZeroDivisionError: a bug" in err and "--debug" in err
    assert main(["--debug"] + args) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError" in err
    monkeypatch.setenv("WORLDLINE_DEBUG", "1")
    assert main(args) == EXIT_INTERNAL
    assert "Traceback" in capsys.readouterr().err


def test_usage_errors_are_one_line_exit_2(capsys):
    for args, word in ((["lift", "--no-such-flag"], "--no-such-flag"), (["nonsense"], "nonsense"),
                       (["simulate", "x.toml", "--out", "o.npz", "--steps", "many"], "--steps")):
        assert main(args) == EXIT_BAD_INPUT
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and word in err, err
    assert main(["--help"]) == 0
    assert main([]) == 0  # bare `worldline` shows the help


# --------------------------------------------------------------------------- real subprocesses


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "WORLDLINE_DEBUG": ""}


def test_subprocess_unexpected_error_is_one_line_exit_3(tmp_path):
    code = ("import sys, particles.lift as L\n"
            "def boom(spec): raise RuntimeError('injected failure')\n"
            "L.lift_scene = boom\n"
            "from worldline.cli import main\n"
            f"sys.exit(main(['lift', {str(ROOT / 'assets' / 'scenes' / 'push_blocks.toml')!r}, '--out', "
            f"{str(tmp_path / 'x.npz')!r}]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == EXIT_INTERNAL, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "injected failure" in lines[0] and "--debug" in lines[0], proc.stderr
    assert not (tmp_path / "x.npz").exists()


def test_subprocess_bad_input_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "worldline", "audit", str(tmp_path)], capture_output=True, text=True,
                          env=_env(), cwd=tmp_path, timeout=120)
    assert proc.returncode == EXIT_BAD_INPUT
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(tmp_path) in lines[0] and "metadata.json" in lines[0], proc.stderr


def _default_sigint():
    """In the child before exec: SIGINT back to its default action. A shell that starts this test run as a
    background job (``cmd &``) hands its children SIGINT ignored, and Python then installs no
    KeyboardInterrupt handler, so the test's Ctrl-C would never arrive (a fault of the launch, not of
    ``worldline``, which rightly keeps an inherited ignore)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_exits_130_and_leaves_no_partial_file(tmp_path):
    """SIGINT during a long simulation: exit 130, no rollout file, no temporary file."""
    out = tmp_path / "rollout.npz"
    proc = subprocess.Popen([sys.executable, "-m", "worldline", "simulate",
                             str(ROOT / "assets" / "scenes" / "push_blocks.toml"), "--steps", "100000", "--out",
                             str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=tmp_path,
                            preexec_fn=_default_sigint)
    # wait for the progress bar: the simulation is running
    deadline = time.time() + 240
    seen = ""
    os.set_blocking(proc.stderr.fileno(), False)
    while time.time() < deadline and proc.poll() is None:
        chunk = proc.stderr.read() or b""
        seen += chunk.decode(errors="replace")
        if "it/s" in seen or "frame" in seen or "s/it" in seen:
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"simulate ended early: {seen}"
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    os.set_blocking(proc.stderr.fileno(), True)
    rest = (proc.stderr.read() or b"").decode(errors="replace")
    assert proc.returncode == EXIT_INTERRUPTED, seen + rest
    assert "Traceback" not in seen + rest
    assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())


# --------------------------------------------------------------------------- these need the critic branch



def test_audit_exploded_two_frames(capsys, monkeypatch):
    """A 2-frame rollout at 1e30 m is a vanish event (exit 1), not 'need at least 3 frames'.
    Needs the critic branch ("vanish at any length")."""
    import json

    case = _CRITIC["exploded-two-frames"]
    run_case(case, capsys, monkeypatch)
    report = json.loads(Path(case.args[case.args.index("--json") + 1]).read_text())
    assert any(ev["category"] == "vanish" for ev in report["events"]), report["events"]


def test_audit_rollout_without_dt(capsys, monkeypatch):
    """A rollout file without dt exits 2 naming the file and dt. Needs the critic branch."""
    case = _CRITIC["rollout-without-dt"]
    run_case(case, capsys, monkeypatch)


def test_installed_typer_and_click_meet_the_declared_bounds():
    """The versions these tests ran on lie in the range pyproject.toml allows (its lower bounds were run
    once by hand: typer 0.12.0 + click 8.0.0, and typer 0.26.0 with its vendored click)."""
    import re
    import tomllib
    from importlib.metadata import version

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for name in ("typer", "click"):
        spec = next(d for d in deps if re.match(rf"{name}\s*>=", d))
        low = tuple(int(x) for x in spec.split(">=")[1].split(",")[0].strip().split("."))
        have = tuple(int(x) for x in re.findall(r"\d+", version(name))[:len(low)])
        assert have >= low, (name, version(name), spec)


def test_entry_point_leaves_with_130_after_an_interrupt(monkeypatch):
    """``worldline.cli.run`` (the console script and ``python -m worldline``) ends an interrupted run with
    ``os._exit(130)``, so that no SIGINT re-raised at interpreter exit can turn the status into -2; other codes go
    through ``sys.exit`` unchanged."""
    import worldline.cli as cli

    left = []

    def fake_exit(code):
        left.append(code)
        raise SystemExit(code)

    monkeypatch.setattr(os, "_exit", fake_exit)
    monkeypatch.setattr(cli, "main", lambda: cli.EXIT_INTERRUPTED)
    with pytest.raises(SystemExit):
        cli.run()
    assert left == [130]
    monkeypatch.setattr(cli, "main", lambda: 2)
    with pytest.raises(SystemExit) as exc:
        cli.run()
    assert exc.value.code == 2 and left == [130]
