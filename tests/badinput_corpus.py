"""A fixed corpus of bad inputs for every ``worldline`` subcommand (issue 16).

``build(root)`` writes the corpus files under ``root`` (deterministic: NumPy seed 16, no clock)
and returns one :class:`Case` per run of the command line: its arguments, the exit codes it may
end with (2 for bad input; 0 or 1 where the input is in fact valid), the words its one error line
must contain (the file and the field), and the outputs that must not exist afterwards.

``tests/test_badinput.py`` runs every case in-process (``worldline.cli.main``).
``python tests/badinput_corpus.py`` prints how many bad inputs there are per command.

What the corpus covers, per input kind:

- every file argument: random bytes, an empty file, a truncated valid file, a folder, a missing path;
- ``.npz`` files (rollouts, actions, RGB-D frames, point clouds, dataset splits): wrong dtypes and
  shapes, NaN and inf, values of 1e30, zero-length arrays, pickled object arrays, unknown keys,
  missing fields;
- ``.toml`` scene files: the same for every field, unknown keys, missing fields, a spacing that
  would allocate terabytes;
- ``.pt`` checkpoints: not a checkpoint, truncated, random bytes, a pickled object, a tensor, a
  wrong config, wrong weights;
- dataset folders: missing or broken ``metadata.json`` and split files;
- flags: NaN, inf, 1e30, zero and negative numbers;
- outputs: a folder in place of the file, a parent that is a file, a read-only folder.
"""

from __future__ import annotations

import json
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
CHECKPOINT = ASSETS / "weights" / "gns_push.pt"
TASK = ASSETS / "tasks" / "push_to_pose.toml"  # a scene with a [goal], for plan
SEED = 16


@dataclass
class Case:
    """One run of the command line on one bad input."""

    command: str
    name: str
    args: list[str]
    codes: tuple[int, ...] = (2,)
    """Exit codes allowed; 2 = bad input."""
    words: tuple[str, ...] = ()
    """Words the single error line must contain (the file's name, the field)."""
    outputs: tuple[str, ...] = ()
    """Paths that must not exist after the run (files or folders)."""
    readonly: str | None = None
    """A folder to make read-only for this run."""
    needs: str | None = None
    """Another branch's work this case depends on (``critic``), or None."""

    @property
    def id(self) -> str:
        return f"{self.command}-{self.name}"


# --------------------------------------------------------------------------- valid inputs

SCENE = """[world]
spacing = 0.02
ground = 0.0
seed = 0

[[object]]
name = "block"
shape = "box"
size = [0.06, 0.06, 0.06]
position = [0.0, 0.0, 0.03]
material = "rigid"

[tool]
shape = "pusher"
size = [0.02, 0.06, 0.04]
path = [{ t = 0.0, position = [-0.06, 0.0, 0.03] }, { t = 1.0, position = [0.0, 0.0, 0.03] }]
"""


def _scene_arrays(n: int = 8, frames: int = 4) -> dict[str, np.ndarray]:
    """A valid rollout: ``n`` particles of one elastic object falling freely, ``frames`` frames."""
    rng = np.random.default_rng(SEED)
    x0 = np.stack(np.meshgrid(*[np.arange(2) * 0.02] * 3, indexing="ij"), -1).reshape(-1, 3)[:n] + [0, 0, 0.5]
    t = np.arange(frames)[:, None, None] / 60.0
    pos = (x0[None] + 0.5 * np.array([0, 0, -9.81]) * t ** 2 + 1e-6 * rng.standard_normal((frames, n, 3)))
    return {
        "format": np.array("worldline.rollout"), "format_version": np.int32(1),
        "positions": pos.astype(np.float32), "dt": np.float64(1 / 60), "radius": np.float64(0.01),
        "particle_type": np.zeros(n, np.int32), "object_id": np.zeros(n, np.int32),
        "object_material": np.array(["elastic"]), "object_name": np.array(["cube"]),
        "object_density": np.array([1000.0], np.float32), "mass": np.full(n, 0.008, np.float32),
        "gravity": np.array([0, 0, -9.81], np.float32), "ground": np.float64(0.0),
    }


def _save_npz(path: Path, arrays: dict, pickles: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, **arrays, allow_pickle=pickles) if pickles else np.savez(f, **arrays)
    return path


def _variants(base: dict, key: str) -> dict[str, dict]:
    """Array-level corruptions of ``base[key]``: dtype, shape, NaN, inf, 1e30, empty, pickle, missing."""
    a = np.asarray(base[key])
    out = {
        f"{key}-missing": {k: v for k, v in base.items() if k != key},
        f"{key}-strings": {**base, key: np.full(a.shape if a.ndim else (), "x", dtype="<U3")},
        f"{key}-complex": {**base, key: a.astype(np.complex64)} if a.dtype.kind in "fiu" else None,
        f"{key}-bool": {**base, key: np.ones(a.shape, bool)} if a.dtype.kind == "f" else None,
        f"{key}-scalar": {**base, key: np.float32(1.0)} if a.ndim else None,
        f"{key}-extra-dim": {**base, key: a[..., None]} if a.ndim else {**base, key: np.ones((2, 2))},
        f"{key}-empty": {**base, key: a[:0] if a.ndim else np.zeros(0)},
        f"{key}-object": {**base, key: np.array([{"x": 1}, None], dtype=object)},
    }
    if a.dtype.kind == "f":
        for tag, v in (("nan", np.nan), ("inf", np.inf), ("1e30", 1e30), ("neg", -1.0)):
            b = a.copy()
            b.reshape(-1)[: max(1, b.size // 2)] = v
            out[f"{key}-{tag}"] = {**base, key: b}
    return {k: v for k, v in out.items() if v is not None}


# --------------------------------------------------------------------------- the corpus


@dataclass
class _Builder:
    root: Path
    cases: list[Case] = field(default_factory=list)
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(SEED))

    def path(self, *parts: str) -> Path:
        p = self.root.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def out(self, case: str, name: str) -> str:
        """A fresh output path for one case (its folder does not exist yet)."""
        return str(self.root / "out" / case / name)

    def add(self, command: str, name: str, args: list[str], codes=(2,), words=(), outputs=(), readonly=None,
            needs=None) -> None:
        self.cases.append(Case(command, name, [str(a) for a in args], tuple(codes), tuple(words),
                               tuple(str(o) for o in outputs), readonly, needs))

    # ----------------------------------------------------------------- generic broken files

    def broken_files(self, suffix: str, valid: Path | None) -> dict[str, tuple[Path, str]]:
        """``name -> (path, word its error names)``: random bytes, empty, truncated, folder, missing."""
        d = self.root / "files"
        out = {}
        p = self.path("files", f"random{suffix}")
        p.write_bytes(self.rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
        out["random-bytes"] = (p, p.name)
        p = self.path("files", f"empty{suffix}")
        p.write_bytes(b"")
        out["empty"] = (p, p.name)
        if valid is not None:
            data = valid.read_bytes()
            for frac in (0.5, 0.9):
                p = self.path("files", f"truncated{int(frac * 100)}_{valid.stem}{suffix}")
                p.write_bytes(data[: int(len(data) * frac)])
                out[f"truncated-{int(frac * 100)}"] = (p, p.name)
        p = d / f"folder{suffix}"
        p.mkdir(parents=True, exist_ok=True)
        out["folder"] = (p, p.name)
        out["missing"] = (d / f"missing{suffix}", f"missing{suffix}")
        return out


def _toml_value(v) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if v != v:
            return "nan"
        if v in (float("inf"), float("-inf")):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return str(v)


def _scene_variants() -> dict[str, tuple[str, str]]:
    """``name -> (toml text, field its error must name)``: every field of a scene file broken once."""
    world = {"spacing": 0.02, "ground": 0.0, "seed": 0}
    obj = {"name": "block", "shape": "box", "size": [0.06, 0.06, 0.06], "position": [0.0, 0.0, 0.03],
           "material": "rigid"}
    tool = {"shape": "pusher", "size": [0.02, 0.06, 0.04]}
    path = "[{ t = 0.0, position = [-0.06, 0.0, 0.03] }, { t = 1.0, position = [0.0, 0.0, 0.03] }]"

    def text(w=world, o=obj, t=tool, p=path, extra="", objects=None):
        lines = ["[world]"] + [f"{k} = {_toml_value(v)}" for k, v in w.items()]
        for ob in (objects if objects is not None else [o]):
            lines += ["", "[[object]]"] + [f"{k} = {_toml_value(v)}" for k, v in ob.items()]
        if t is not None:
            lines += ["", "[tool]"] + [f"{k} = {_toml_value(v)}" for k, v in t.items()]
            if p is not None:
                lines.append(f"path = {p}")
        return "\n".join(lines) + "\n" + extra

    out: dict[str, tuple[str, str]] = {}
    for key, bad in [("spacing", 0.0), ("spacing", -0.02), ("spacing", float("nan")), ("spacing", float("inf")),
                     ("spacing", "small"), ("spacing", 1e30), ("spacing", 1e-4), ("spacing", 1e-30),
                     ("ground", "low"), ("ground", float("nan")), ("seed", -1), ("seed", 1.5),
                     ("gravity", [0.0, -9.81]), ("gravity", [0.0, 0.0, float("inf")]), ("gravity", "down")]:
        tag = bad if isinstance(bad, str) else _toml_value(bad)
        out[f"world.{key}={tag}"] = (text(w={**world, key: bad}), f"world.{key}")
    out["world.spacing-missing"] = (text(w={"ground": 0.0}), "world.spacing")
    out["world.unknown-key"] = (text(w={**world, "spacnig": 0.02}), "world.spacnig")
    for key, bad in [("size", [0.06, 0.06]), ("size", [0.06, -0.06, 0.06]), ("size", [0.06, float("nan"), 0.06]),
                     ("size", [1e30, 1e30, 1e30]), ("size", [100.0, 100.0, 100.0]), ("size", "big"),
                     ("size", [0.06, float("inf"), 0.06]),
                     ("position", [0.0, 0.0]), ("position", [float("nan"), 0.0, 0.0]), ("position", [1e30, 0.0, 0.0]),
                     ("material", "jelly"), ("material", 3), ("shape", "torus"), ("density", 0.0),
                     ("density", float("inf")), ("friction", -1.0), ("poisson_ratio", 0.5), ("rotation", [0, 0, 0, 0]),
                     ("rotation", [0, 0, 1]), ("fill", "hollow"), ("name", "tool"), ("youngs_modulus", -5.0)]:
        tag = bad if isinstance(bad, str) else _toml_value(bad)
        word = "object" if key == "name" else f"object[0].{key}"
        out[f"object.{key}={tag}"] = (text(o={**obj, key: bad}), word)
    for key in ("shape", "material", "size"):
        out[f"object.{key}-missing"] = (text(o={k: v for k, v in obj.items() if k != key}), f"object[0].{key}")
    out["object.unknown-key"] = (text(o={**obj, "colour": "red"}), "object[0].colour")
    out["object.none"] = (text(objects=[]), "object")
    out["object.duplicate-names"] = (text(objects=[obj, {**obj, "position": [0.2, 0.0, 0.03]}]), "object")
    out["object.mesh-missing-file"] = (text(o={**{k: v for k, v in obj.items() if k != "size"}, "shape": "mesh",
                                               "mesh": "no_such.obj"}), "object[0].mesh")
    out["object.mesh-random-bytes"] = (text(o={**{k: v for k, v in obj.items() if k != "size"}, "shape": "mesh",
                                               "mesh": "random.obj"}), "random.obj")
    out["object.mesh-is-folder"] = (text(o={**{k: v for k, v in obj.items() if k != "size"}, "shape": "mesh",
                                            "mesh": "folder.obj"}), "folder.obj")
    out["tool.size-missing"] = (text(t={"shape": "pusher"}), "tool.size")
    out["tool.shape=hammer"] = (text(t={**tool, "shape": "hammer"}), "tool.shape")
    out["tool.path-missing"] = (text(p=None), "tool.path")
    out["tool.path-empty"] = (text(p="[]"), "tool.path")
    out["tool.path-backwards"] = (text(p="[{ t = 1.0, position = [0.0, 0.0, 0.03] }, "
                                         "{ t = 0.5, position = [0.1, 0.0, 0.03] }]"), "tool.path[1].t")
    out["tool.path-nan-t"] = (text(p="[{ t = nan, position = [0.0, 0.0, 0.03] }]"), "tool.path[0].t")
    out["tool.path-1e30-position"] = (text(p="[{ t = 0.0, position = [1e30, 0.0, 0.03] }]"),
                                      "tool.path[0].position")
    out["tool.gripper-no-width"] = (text(t={**tool, "shape": "gripper"}), "tool.path[0].width")
    out["tool.unknown-key"] = (text(t={**tool, "speed": 1.0}), "tool.speed")
    out["top.unknown-key"] = (text(extra="[camera]\nfov = 60\n"), "camera")
    out["top.format_version=2"] = ("format_version = 2\n" + text(), "format_version")
    body = text().split("[[object]]", 1)[1]
    out["world-not-a-table"] = ("world = 3\n\n[[object]]" + body, "world")
    out["object-not-a-table"] = ("object = [1, 2]\n" + text(objects=[]), "object[0]")
    out["not-toml"] = ("[world\nspacing = = 0.02\n", "TOML")
    out["binary-utf8"] = ("\udcff", "")  # replaced by raw bytes below
    return out


def build(root) -> list[Case]:
    """Write the corpus under ``root`` and return its cases (the same every time)."""
    root = Path(root)
    b = _Builder(root)
    good = root / "good"
    good.mkdir(parents=True, exist_ok=True)
    scene = good / "scene.toml"
    scene.write_text(SCENE)
    rollout = _save_npz(good / "rollout.npz", _scene_arrays())
    cloud = _save_npz(good / "cloud.npz", {"points": np.random.default_rng(SEED).uniform(-0.1, 0.1, (200, 3))})
    depth = np.full((24, 32), 0.8)
    rgbd = _save_npz(good / "rgbd.npz", {"format": np.array("worldline.rgbd"), "depth": depth,
                                         "intrinsics": np.array([30.0, 30.0, 16.0, 12.0]),
                                         "mask": np.ones((24, 32), np.int32)})
    from particles.lift import lift_scene
    from particles.scene_file import load_scene_file

    tool_m = len(lift_scene(load_scene_file(scene)).tool_indices)
    action = _save_npz(good / "action.npz", {"positions": np.zeros((5, tool_m, 3), np.float32)})
    from particles import load_rollout, write_dataset

    ro = load_rollout(rollout)
    dataset = good / "dataset"
    long = {**_scene_arrays(frames=12)}
    ro_long = load_rollout(_save_npz(good / "long.npz", long))
    write_dataset(dataset, {"train": [ro_long, ro_long], "valid": [ro_long], "test": [ro_long]})
    del ro
    # the files a bad mesh path points at
    (root / "files").mkdir(exist_ok=True)

    # ---- scene files, for every command that reads one
    variants = _scene_variants()
    scenes: dict[str, tuple[Path, str]] = {}
    for name, (text, word) in variants.items():
        p = b.path("scenes", f"{len(scenes):03d}.toml")
        if name == "binary-utf8":
            p.write_bytes(b"\xff\xfe[world]\x00spacing")
            word = p.name
        else:
            p.write_text(text)
        scenes[name] = (p, word)
    (root / "scenes" / "random.obj").write_bytes(b.rng.integers(0, 256, 2048, dtype=np.uint8).tobytes())
    (root / "scenes" / "folder.obj").mkdir(exist_ok=True)
    for name, (p, word) in b.broken_files(".toml", scene).items():
        scenes[name] = (p, word)

    def scene_cases(command: str, make_args, out_name: str, tool_steps: bool = False):
        for name, (p, word) in scenes.items():
            case = f"{command}-{name}"
            out = b.out(case, out_name)
            codes = (2,)
            words = (p.name, word) if word else (p.name,)
            if name in ("object.mesh-random-bytes", "object.mesh-is-folder"):
                words = (p.name, word, "object[0].mesh")
            b.add(command, f"scene:{name}", make_args(p, out), codes, words, (out,))

    scene_cases("lift", lambda p, o: ["lift", p, "--out", o], "scene.npz")
    scene_cases("simulate", lambda p, o: ["simulate", p, "--steps", "3", "--out", o], "rollout.npz")
    scene_cases("rollout", lambda p, o: ["rollout", p, "--checkpoint", CHECKPOINT, "--steps", "3", "--out", o],
                "rollout.npz")
    scene_cases("demo", lambda p, o: ["demo", "--scene", p, "--steps", "3", "--no-model", "--out-dir", o], "demo")
    scene_cases("plan", lambda p, o: ["plan", p, "--backend", "constraints", "--out", o], "plan")

    # ---- rollout .npz files (audit, view, view --truth)
    base = _scene_arrays()
    rollouts: dict[str, tuple[Path, str]] = {}
    for key in ("positions", "dt", "radius", "object_id", "object_material", "particle_type", "gravity", "ground",
                "mass", "format_version"):
        for name, arrays in _variants(base, key).items():
            p = b.path("rollouts", f"{len(rollouts):03d}.npz")
            _save_npz(p, arrays, pickles=name.endswith("-object"))
            rollouts[name] = (p, key)
    rollouts["format-wrong"] = (_save_npz(b.path("rollouts", "fmt.npz"), {**base, "format": np.array("other")}), "format")
    rollouts["object_id-out-of-range"] = (_save_npz(b.path("rollouts", "oid.npz"),
                                                    {**base, "object_id": np.full(8, 5, np.int32)}), "object_id")
    rollouts["material-unknown"] = (_save_npz(b.path("rollouts", "mat.npz"),
                                              {**base, "object_material": np.array(["jelly"])}), "object_material")
    rollouts["unknown-key"] = (_save_npz(b.path("rollouts", "unk.npz"), {**base, "colour": np.array([1, 2])}), "")
    rollouts["single-npy"] = (b.path("rollouts", "single.npz"), "")
    np.save(open(rollouts["single-npy"][0], "wb"), base["positions"])
    for name, (p, word) in b.broken_files(".npz", rollout).items():
        rollouts[name] = (p, "")

    #: variants a reader may accept: audit reads bare positions and fills defaults (strict=False)
    lenient = {"unknown-key", "radius-missing", "object_id-missing", "object_material-missing",
               "particle_type-missing", "gravity-missing", "ground-missing", "mass-missing",
               "format_version-missing", "positions-1e30", "positions-nan", "positions-inf", "dt-missing",
               "object_material-missing", "single-npy", "ground-neg", "mass-neg", "gravity-neg", "gravity-1e30",
               "positions-neg", "ground-empty", "format_version-empty", "mass-1e30", "gravity-nan", "gravity-inf",
               "mass-nan", "mass-inf", "format_version-extra-dim", "mass-strings", "mass-extra-dim",
               "mass-complex", "mass-bool", "mass-scalar", "mass-empty", "mass-object", "format_version-strings",
               "format_version-object", "format_version-complex"}
    for name, (p, key) in rollouts.items():
        words = (p.name,) + ((key,) if key else ())
        codes = (0, 1, 2) if name in lenient else (2,)
        out = b.out(f"audit-{name}", "report.json")
        if name != "dt-missing":  # audit without dt: the critic branch's case "rollout-without-dt" below
            b.add("audit", f"rollout:{name}", ["audit", p, "--json", out], codes, words, (out,))
        out = b.out(f"view-{name}", "view.rrd")
        b.add("view", f"rollout:{name}", ["view", p, "--out", out], codes if name in lenient else (2,), words, (out,))
    for name in ("random-bytes", "truncated-50", "positions-nan", "positions-strings", "folder", "empty"):
        p, key = rollouts[name]
        out = b.out(f"view-truth-{name}", "view.rrd")
        codes = (0, 2) if name in lenient else (2,)
        b.add("view", f"truth:{name}", ["view", rollout, "--truth", p, "--out", out], codes, (p.name,), (out,))
    # view: a report that is not JSON, a .rrd that is not a recording, a lifted scene that is broken
    bad_json = b.path("files", "report.json")
    bad_json.write_bytes(b"{not json")
    out = b.out("view-report", "view.rrd")
    b.add("view", "report:not-json", ["view", rollout, "--report", bad_json, "--out", out], (2,), ("report.json",),
          (out,))
    rrd = b.path("files", "fake.rrd")
    rrd.write_bytes(b.rng.integers(0, 256, 512, dtype=np.uint8).tobytes())
    b.add("view", "rrd:random-bytes", ["view", rrd], (2,), ("fake.rrd",))
    for name in ("random-bytes", "empty", "truncated-50", "folder", "missing"):
        p, _ = rollouts[name]
        out = b.out(f"view-scene-{name}", "view.rrd")
        b.add("view", f"scene:{name}", ["view", rollout, "--scene", p, "--out", out], (2,), (p.name,), (out,))
    out = b.out("view-maxpoints", "view.rrd")
    b.add("view", "flag:max-points=0", ["view", rollout, "--max-points", "0", "--out", out], (2,), ("--max-points",),
          (out,))

    # ---- audit: a rollout exploded to 1e30 m in two frames; a rollout without dt (critic branch)
    two = {**base, "positions": (base["positions"][:2] * 1e30).astype(np.float32)}  # both frames ~1e30 m out
    p = _save_npz(b.path("rollouts", "exploded2.npz"), two)
    b.add("audit", "exploded-two-frames", ["audit", p, "--json", b.out("audit-exploded", "report.json")], (1,), (),
          (), needs="critic")
    p = _save_npz(b.path("rollouts", "nodt.npz"), {k: v for k, v in base.items() if k != "dt"})
    b.add("audit", "rollout-without-dt", ["audit", p], (2,), ("nodt.npz", "dt"), (), needs="critic")
    for flag in ("--contact-tolerance", "--teleport-tolerance", "--floating-window", "--workers"):
        for v in ("nan", "-1", "inf"):
            if flag == "--workers" and v != "-1":
                continue
            b.add("audit", f"flag:{flag}={v}", ["audit", rollout, flag, v], (2,), (flag,))
    b.add("audit", "flag:--format=xml", ["audit", rollout, "--format", "xml"], (2,), ("--format",))
    b.add("audit", "flag:--checks=bogus", ["audit", rollout, "--checks", "bogus"], (2,), ("bogus",))

    # ---- audit: TAP-Vid-3D point tracks (issue 15)
    rng_t = np.random.default_rng(SEED + 15)
    xyz = (rng_t.normal(0, 0.05, (6, 10, 3)) + [0.0, 0.0, 1.0]).astype(np.float32)
    vis = np.ones((6, 10), bool)
    intr = np.array([300.0, 300.0, 160.0, 120.0], np.float32)
    good = {"tracks_XYZ": xyz, "visibility": vis, "fx_fy_cx_cy": intr}
    p = _save_npz(b.path("tracks", "tracks.npz"), good)
    b.add("audit", "tracks:no-fps", ["audit", p], (2,), ("--fps",))
    for flag, v in (("--fps", "0"), ("--fps", "nan"), ("--scale", "-1"), ("--radius", "0"), ("--up", "0,0,0"),
                    ("--up", "1,2")):
        b.add("audit", f"tracks:flag:{flag}={v}", ["audit", p, "--fps", "30", flag, v] if flag != "--fps"
              else ["audit", p, flag, v], (2,), (flag,))
    bad_tracks = {
        "visibility-missing": ({k: v for k, v in good.items() if k != "visibility"}, "visibility"),
        "visibility-uint8": ({**good, "visibility": vis.astype(np.uint8)}, "visibility"),
        "visibility-float": ({**good, "visibility": vis.astype(np.float32)}, "visibility"),
        "visibility-shape": ({**good, "visibility": vis[:, :9]}, "visibility"),
        "xyz-shape": ({**good, "tracks_XYZ": xyz[..., :2]}, "tracks_XYZ"),
        "xyz-nan-visible": ({**good, "tracks_XYZ": np.where(np.arange(10)[None, :, None] == 3, np.nan, xyz)
                             .astype(np.float32)}, "tracks_XYZ"),
        "intrinsics-missing": ({k: v for k, v in good.items() if k != "fx_fy_cx_cy"}, "fx_fy_cx_cy"),
        "intrinsics-shape": ({**good, "fx_fy_cx_cy": intr[:3]}, "fx_fy_cx_cy"),
        "intrinsics-negative": ({**good, "fx_fy_cx_cy": -intr}, "fx_fy_cx_cy"),
        "extrinsics-shape": ({**good, "extrinsics_w2c": np.eye(4, dtype=np.float32)[None].repeat(5, 0)},
                             "extrinsics_w2c"),
        "extrinsics-not-rigid": ({**good, "extrinsics_w2c": 2 * np.eye(4, dtype=np.float32)}, "extrinsics_w2c"),
        "nothing-visible": ({**good, "visibility": np.zeros_like(vis)}, "visibility"),
    }
    for name, (arrays, fld) in bad_tracks.items():
        p = _save_npz(b.path("tracks", f"{name}.npz"), arrays)
        out = b.out(f"audit-tracks-{name}", "report.json")
        b.add("audit", f"tracks:{name}", ["audit", p, "--fps", "30", "--json", out], (2,), (f"{name}.npz", fld), (out,))

    # ---- datasets (train, rollout, audit)
    def make_dataset(name: str, mutate) -> Path:
        d = root / "datasets" / name
        d.mkdir(parents=True, exist_ok=True)
        for f in dataset.iterdir():
            (d / f.name).write_bytes(f.read_bytes())
        mutate(d)
        return d

    meta = json.loads((dataset / "metadata.json").read_text())
    datasets: dict[str, tuple[Path, str]] = {}

    def set_meta(**kw):
        def f(d):
            m = {k: v for k, v in {**meta, **kw}.items() if v is not _DROP}
            (d / "metadata.json").write_text(json.dumps(m))
        return f

    def write(name, data):
        def f(d):
            if data is None:
                (d / name).unlink()
            elif data == "folder":
                (d / name).unlink()
                (d / name).mkdir()
            else:
                (d / name).write_bytes(data)
        return f

    train_bytes = (dataset / "train.npz").read_bytes()
    for name, mut, word in [
        ("metadata-missing", write("metadata.json", None), "metadata.json"),
        ("metadata-random", write("metadata.json", b.rng.integers(0, 256, 300, dtype=np.uint8).tobytes()), "metadata.json"),
        ("metadata-empty", write("metadata.json", b""), "metadata.json"),
        ("metadata-list", write("metadata.json", b"[1, 2]"), "metadata.json"),
        ("metadata-folder", write("metadata.json", "folder"), "metadata.json"),
        ("metadata-dt-missing", set_meta(dt=_DROP), "dt"),
        ("metadata-dt-string", set_meta(dt="fast"), "dt"),
        ("metadata-bounds-missing", set_meta(bounds=_DROP), "bounds"),
        ("metadata-vel_std-short", set_meta(vel_std=[1.0]), "vel_std"),
        ("metadata-vel_std-strings", set_meta(vel_std=["a", "b", "c"]), "vel_std"),
        ("metadata-vel_std-nan", set_meta(vel_std=[float("nan")] * 3), "vel_std"),
        ("metadata-version-99", set_meta(format_version=99), "format_version"),
        ("metadata-dt-negative", set_meta(dt=-0.1), "dt"),
        ("metadata-dt-1e30", set_meta(dt=1e30), "dt"),
        ("train-missing", write("train.npz", None), "train.npz"),
        ("train-random", write("train.npz", b.rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()), "train.npz"),
        ("train-empty", write("train.npz", b""), "train.npz"),
        ("train-truncated", write("train.npz", train_bytes[: len(train_bytes) // 2]), "train.npz"),
        ("train-folder", write("train.npz", "folder"), "train.npz"),
    ]:
        datasets[name] = (make_dataset(name, mut), word)
    traj = {k[len("traj_0/"):]: np.load(dataset / "train.npz")[k] for k in np.load(dataset / "train.npz").files
            if k.startswith("traj_0/")}
    for key in ("positions", "particle_type", "object_id"):
        for name, arrays in _variants(traj, key).items():
            if name.endswith("-missing") and key == "positions":
                word = "traj_<i>/positions"
            else:
                word = key
            full = {**{f"traj_0/{k}": v for k, v in arrays.items()}, "format": np.array("worldline.dataset"),
                    "format_version": np.int32(1), "num_trajectories": np.int64(1)}
            d = make_dataset(f"traj-{name}", lambda d: None)
            _save_npz(d / "train.npz", full, pickles=name.endswith("-object"))
            datasets[f"traj-{name}"] = (d, word)
    lenient_ds = {"traj-particle_type-missing", "traj-object_id-missing", "traj-positions-neg"}
    for name, (d, word) in datasets.items():
        out = b.out(f"train-{name}", "run")
        b.add("train", f"dataset:{name}", ["train", d, "--out", out, "--steps", "1", "--no-progress"],
              (0, 2) if name in lenient_ds else (2,), (d.name, word), (out,))
        out = b.out(f"rollout-ds-{name}", "rollout.npz")
        lenient_rollout = lenient_ds | {"metadata-vel_std-nan"}  # the model brings its own statistics
        b.add("rollout", f"dataset:{name}", ["rollout", d, "--checkpoint", CHECKPOINT, "--split", "train", "--out",
                                             out], (0, 2) if name in lenient_rollout else (2,), (d.name, word), (out,))
        out = b.out(f"audit-ds-{name}", "report.json")
        lenient_audit = lenient_ds | {"train-missing",  # audit reads the splits a dataset has
                                      "traj-positions-nan", "traj-positions-inf", "traj-positions-1e30",
                                      "metadata-vel_std-short", "metadata-vel_std-strings", "metadata-vel_std-nan"}
        b.add("audit", f"dataset:{name}", ["audit", d, "--json", out], (0, 1, 2) if name in lenient_audit else (2,),
              (d.name, word), (out,))
    # datasets named as files, files named as datasets
    out = b.out("train-file-as-dataset", "run")
    b.add("train", "dataset:is-a-file", ["train", rollout, "--out", out, "--steps", "1"], (2,), ("rollout.npz",),
          (out,))

    # ---- checkpoints (rollout, demo, train --resume)
    import torch

    from dynamics.train import load_checkpoint

    ck = load_checkpoint(CHECKPOINT)
    ckpts: dict[str, tuple[Path, str]] = {}

    def save_pt(name, obj, word=""):
        p = b.path("checkpoints", f"{name}.pt")
        torch.save(obj, p)
        ckpts[name] = (p, word)

    save_pt("tensor", torch.ones(3), "format")
    save_pt("custom-object", {"format": "worldline.gns_checkpoint", "thing": _Thing()}, "")
    save_pt("plain-dict", {"a": 1}, "format")
    save_pt("wrong-format", {**ck, "format": "other"}, "format")
    save_pt("future-version", {**ck, "format_version": 99}, "format_version")
    save_pt("model-missing", {k: v for k, v in ck.items() if k != "model"}, "model")
    save_pt("config-missing", {k: v for k, v in ck.items() if k != "model_config"}, "model_config")
    save_pt("config-not-dict", {**ck, "model_config": [1, 2]}, "model_config")
    save_pt("config-unknown-key", {**ck, "model_config": {**ck["model_config"], "colour": 1}}, "model_config")
    save_pt("config-dt-negative", {**ck, "model_config": {**ck["model_config"], "dt": -1.0}}, "model_config")
    save_pt("config-dt-nan", {**ck, "model_config": {**ck["model_config"], "dt": float("nan")}}, "model_config")
    save_pt("config-latent-1e30", {**ck, "model_config": {**ck["model_config"], "latent": 10 ** 30}}, "model_config")
    save_pt("weights-wrong-shape", {**ck, "model": {k: v[..., :1] if v.ndim else v for k, v in ck["model"].items()}},
            "model")
    save_pt("weights-not-tensors", {**ck, "model": {k: 1 for k in ck["model"]}}, "model")
    save_pt("weights-empty", {**ck, "model": {}}, "model")
    p = b.path("checkpoints", "pickled-object.pt")
    with open(p, "wb") as f:
        pickle.dump({"format": "worldline.gns_checkpoint", "model": _Thing()}, f)
    ckpts["plain-pickle"] = (p, "")
    p = b.path("checkpoints", "torch-object.pt")
    torch.save({"x": np.ones(3)}, p)
    ckpts["torch-pickled-object"] = (p, "")
    for name, (p, _) in b.broken_files(".pt", CHECKPOINT).items():
        ckpts[name] = (p, "")
    for name, (p, word) in ckpts.items():
        words = (p.name,) + ((word,) if word else ())
        out = b.out(f"rollout-ck-{name}", "rollout.npz")
        b.add("rollout", f"checkpoint:{name}", ["rollout", scene, "--checkpoint", p, "--steps", "3", "--out", out],
              (2,), words, (out,))
        out = b.out(f"plan-ck-{name}", "plan")
        b.add("plan", f"checkpoint:{name}", ["plan", TASK, "--checkpoint", p, "--out", out], (2,), words, (out,))
        out = b.out(f"demo-ck-{name}", "demo")
        b.add("demo", f"checkpoint:{name}", ["demo", "--scene", scene, "--checkpoint", p, "--steps", "3", "--out-dir",
                                             out], (2,), words, (out,))
        if p.is_file() and name not in ("missing",):
            run = root / "runs" / name
            run.mkdir(parents=True, exist_ok=True)
            (run / "checkpoint.pt").write_bytes(p.read_bytes())
            b.add("train", f"resume:{name}", ["train", dataset, "--out", run, "--resume", "--steps", "1",
                                              "--no-progress"], (2,), ("checkpoint.pt",), (run / "model.pt",))

    # ---- actions (simulate --action), RGB-D frames and point clouds (lift)
    abase = {"positions": np.zeros((5, tool_m, 3), np.float32)}
    actions = dict(_variants(abase, "positions"))
    actions["indices-wrong"] = {**abase, "indices": np.arange(100, 100 + tool_m)}
    actions["indices-floats"] = {**abase, "indices": np.linspace(0, 1, tool_m)}
    actions["too-short"] = {"positions": np.zeros((2, tool_m, 3), np.float32)}
    for name, arrays in actions.items():
        p = _save_npz(b.path("actions", f"{name}.npz"), arrays, pickles=name.endswith("-object"))
        word = "indices" if name.startswith("indices") else ("action" if name == "too-short" else "positions")
        out = b.out(f"simulate-action-{name}", "rollout.npz")
        codes = (0, 2) if name == "positions-neg" else (2,)
        b.add("simulate", f"action:{name}", ["simulate", scene, "--steps", "3", "--action", p, "--out", out], codes,
              (p.name,) if name == "too-short" else (p.name, word), (out,))
    for name, (p, _) in b.broken_files(".npz", action).items():
        out = b.out(f"simulate-actionfile-{name}", "rollout.npz")
        b.add("simulate", f"action-file:{name}", ["simulate", scene, "--steps", "3", "--action", p, "--out", out],
              (2,), (p.name,), (out,))

    rbase = {"format": np.array("worldline.rgbd"), "depth": depth, "intrinsics": np.array([30.0, 30.0, 16.0, 12.0]),
             "mask": np.ones((24, 32), np.int32)}
    frames = {}
    for key in ("depth", "intrinsics", "mask"):
        frames.update(_variants(rbase, key))
    frames["camera_to_world-nan"] = {**rbase, "camera_to_world": np.full((4, 4), np.nan)}
    frames["camera_to_world-shape"] = {**rbase, "camera_to_world": np.eye(3)}
    frames["depth_scale-zero"] = {**rbase, "depth_scale": np.float64(0.0)}
    frames["depth_scale-strings"] = {**rbase, "depth_scale": np.array("mm")}
    frames["format-wrong"] = {**rbase, "format": np.array("worldline.rollout")}
    #: zero and non-finite depth mean "no measurement", depth past depth_trunc (10 m) is dropped
    lenient_rgbd = {"mask-missing", "depth-neg", "mask-extra-dim", "depth-nan", "depth-inf", "depth-1e30"}
    for name, arrays in frames.items():
        p = _save_npz(b.path("rgbd", f"{name}.npz"), arrays, pickles=name.endswith("-object"))
        key = name.split("-")[0]
        out = b.out(f"lift-rgbd-{name}", "scene.npz")
        b.add("lift", f"rgbd:{name}", ["lift", "--rgbd", p, "--out", out], (0, 2) if name in lenient_rgbd else (2,),
              (p.name, key), (out,))
    for name, (p, _) in b.broken_files(".npz", rgbd).items():
        out = b.out(f"lift-rgbdfile-{name}", "scene.npz")
        b.add("lift", f"rgbd-file:{name}", ["lift", "--rgbd", p, "--out", out], (2,), (p.name,), (out,))
    cbase = {"points": np.random.default_rng(SEED).uniform(-0.1, 0.1, (200, 3))}
    for name, arrays in _variants(cbase, "points").items():
        p = _save_npz(b.path("clouds", f"{name}.npz"), arrays, pickles=name.endswith("-object"))
        out = b.out(f"lift-cloud-{name}", "scene.npz")
        b.add("lift", f"cloud:{name}", ["lift", p, "--out", out], (0, 2) if name == "points-neg" else (2,),
              (p.name, "points"), (out,))
    for suffix in (".ply", ".pcd", ".xyz"):
        for name, (p, _) in b.broken_files(suffix, None).items():
            out = b.out(f"lift-cloudfile{suffix}-{name}", "scene.npz")
            b.add("lift", f"cloud-file{suffix}:{name}", ["lift", p, "--out", out], (2,), (p.name,), (out,))
    for name, (p, _) in b.broken_files(".npz", cloud).items():
        if name in ("random-bytes", "empty", "missing", "folder"):
            continue  # the same files as the rollouts' above
        out = b.out(f"lift-cloudnpz-{name}", "scene.npz")
        b.add("lift", f"cloud-npz:{name}", ["lift", p, "--out", out], (2,), (p.name,), (out,))

    # ---- flags
    def flag_cases(command, make, flags, out_name):
        for flag, value in flags:
            case = f"{command}-flag{flag}={value}"
            out = b.out(case, out_name)
            b.add(command, f"flag:{flag}={value}", make(out) + [flag, value], (2,), (flag,), (out,))

    flag_cases("lift", lambda o: ["lift", scene, "--out", o],
               [("--spacing", v) for v in ("0", "-1", "nan", "inf", "1e-30", "1e-4")]
               + [("--graph-radius", v) for v in ("nan", "-1", "inf")] + [("--keypoints", "-3"),
                                                                          ("--ground", "nan"), ("--max-particles", "0")],
               "scene.npz")
    flag_cases("lift", lambda o: ["lift", cloud, "--out", o], [("--material", "jelly"), ("--spacing", "nan")],
               "scene.npz")
    flag_cases("simulate", lambda o: ["simulate", scene, "--out", o],
               [("--steps", v) for v in ("0", "-5", "1e30", "1000000000000")]
               + [("--dt", v) for v in ("0", "-0.1", "nan", "inf")] + [("--substeps", v) for v in ("0", "-1")]
               + [("--max-particles", "10")], "rollout.npz")
    flag_cases("dataset", lambda o: ["dataset", "--out", o],
               [("--scenes", v) for v in ("0", "-1", "1000000000000")] + [("--frames", v) for v in ("2", "0",
                                                                                                   "1000000000000")]
               + [("--workers", "0"), ("--dt", "nan"), ("--dt", "0"), ("--radius", "inf"), ("--radius", "-0.01"),
                  ("--granular-fraction", "2"), ("--granular-fraction", "nan"), ("--valid", "0.9"), ("--test", "-1"),
                  ("--max-particles", "10"), ("--kinds", "boxes,jelly"), ("--kinds", ","), ("--heldout", "2"),
                  ("--heldout-kinds", "sand")], "ds")
    flag_cases("train", lambda o: ["train", dataset, "--out", o, "--no-progress"],
               [("--steps", v) for v in ("0", "-1")] + [("--batch-size", v) for v in ("0", "-2")]
               + [("--lr", v) for v in ("nan", "-1", "inf", "0")] + [("--threads", "0"), ("--latent", "0"),
                                                                   ("--latent", "-4"), ("--message-steps", "0"),
                                                                   ("--history", "0"), ("--hidden-layers", "-1"),
                                                                   ("--noise-std", "nan"), ("--noise-std", "-1"),
                                                                   ("--lr-decay-steps", "0"),
                                                                   ("--validate-every", "-1"),
                                                                   ("--checkpoint-every", "-1")], "run")
    flag_cases("train", lambda o: ["train", dataset, "--model", "objects", "--out", o, "--no-progress"],
               [("--steps", "0"), ("--unroll", "0"), ("--lr", "nan"), ("--history", "0"), ("--latent", "0"),
                ("--max-minutes", "-1"), ("--max-minutes", "nan"), ("--model", "bogus"), ("--ground-friction", "-1"),
                ("--ground-friction", "nan")], "run")
    flag_cases("rollout", lambda o: ["rollout", scene, "--checkpoint", CHECKPOINT, "--out", o],
               [("--steps", v) for v in ("0", "-1", "1000000000000")] + [("--max-particles", "10")], "rollout.npz")
    flag_cases("rollout", lambda o: ["rollout", dataset, "--checkpoint", CHECKPOINT, "--out", o],
               [("--index", "99"), ("--index", "-1"), ("--split", "bogus"), ("--steps", "1000")], "rollout.npz")
    flag_cases("demo", lambda o: ["demo", "--scene", scene, "--no-model", "--out-dir", o],
               [("--steps", v) for v in ("0", "-1", "1e30", "100000")] + [("--max-particles", "10")], "demo")
    flag_cases("plan", lambda o: ["plan", TASK, "--backend", "constraints", "--out", o],
               [("--samples", v) for v in ("0", "-1")] + [("--horizon", v) for v in ("0", "-3")]
               + [("--iterations", "0"), ("--replan-every", "0"), ("--replan-every", "999"), ("--max-steps", "0"),
                  ("--planner", "bogus"), ("--backend", "bogus"), ("--max-particles", "10")], "plan")
    # ---- evaluate: policies that cannot be loaded, tasks that do not exist, bad flags
    ev = ["evaluate", "--tasks", TASK, "--backend", "constraints", "--no-record"]
    for name, spec, word in (("no-colon", "nocolon", "nocolon"), ("no-module", "no_such_module_xyz:f", "no_such_module_xyz"),
                             ("no-function", "dynamics.policies:no_such_policy", "no_such_policy"),
                             ("empty", ":", "--policy")):
        out = b.out(f"evaluate-policy-{name}", "ev")
        b.add("evaluate", f"policy:{name}", ev + ["--policy", spec, "--out", out], (2,), (word,), (out,))
    (root / "no_tasks_here").mkdir(exist_ok=True)
    for name, tasks in (("missing", str(root / "no_such_tasks")), ("empty-folder", str(root / "no_tasks_here"))):
        out = b.out(f"evaluate-tasks-{name}", "ev")
        b.add("evaluate", f"tasks:{name}", ["evaluate", "--policy", "dynamics.policies:straight_push", "--tasks", tasks,
                                            "--backend", "constraints", "--no-record", "--out", out], (2,), ("--tasks",), (out,))
    flag_cases("evaluate", lambda o: ev + ["--policy", "dynamics.policies:straight_push", "--out", o],
               [("--episodes-per-task", "0"), ("--max-steps", "0"), ("--max-steps", "-3"), ("--backend", "bogus")], "ev")
    out = b.out("evaluate-checkpoint-missing", "ev")
    b.add("evaluate", "checkpoint:missing", ["evaluate", "--policy", "dynamics.policies:straight_push", "--tasks", TASK,
                                             "--backend", "gnn", "--checkpoint", str(root / "none.pt"), "--out", out],
          (2,), ("none.pt",), (out,))
    b.add("evaluate", "flag:unknown", ["evaluate", "--policy", "dynamics.policies:straight_push", "--out",
                                       str(root / "ev_unknown"), "--no-such-flag"], (2,), ("--no-such-flag",))
    b.add("evaluate", "flag:missing-required", ["evaluate"], (2,), ("Missing",))
    for command, args in (("plan", ["plan", TASK]),
                          ("lift", ["lift", scene]), ("simulate", ["simulate", scene]), ("audit", ["audit", rollout]),
                          ("view", ["view", rollout]), ("train", ["train", dataset]), ("dataset", ["dataset"]),
                          ("rollout", ["rollout", scene, "--checkpoint", CHECKPOINT]), ("demo", ["demo"])):
        b.add(command, "flag:unknown", args + ["--no-such-flag"], (2,), ("--no-such-flag",))
    for command, args in (("lift", ["lift"]), ("simulate", ["simulate"]), ("audit", ["audit"]), ("view", ["view"]),
                          ("train", ["train"]), ("dataset", ["dataset"]), ("rollout", ["rollout"]), ("plan", ["plan"])):
        b.add(command, "flag:missing-required", args, (2,), ("Missing",))

    # ---- outputs: a folder in place of the file, a parent that is a file, a read-only folder
    blocker = b.path("files", "a_file")
    blocker.write_text("x")
    outdir = b.path("outputs", "is_a_folder.npz")
    outdir.mkdir(exist_ok=True)
    rrd_dir = b.path("outputs", "is_a_folder.rrd")
    rrd_dir.mkdir(exist_ok=True)
    json_dir = b.path("outputs", "is_a_folder.json")
    json_dir.mkdir(exist_ok=True)
    ro_dir = root / "readonly"
    ro_dir.mkdir(exist_ok=True)
    for command, make, target in (
            ("lift", lambda o: ["lift", scene, "--out", o], "npz"),
            ("simulate", lambda o: ["simulate", scene, "--steps", "3", "--out", o], "npz"),
            ("rollout", lambda o: ["rollout", scene, "--checkpoint", CHECKPOINT, "--steps", "3", "--out", o], "npz"),
            ("audit", lambda o: ["audit", rollout, "--json", o], "json"),
            ("view", lambda o: ["view", rollout, "--out", o], "rrd"),
            ("dataset", lambda o: ["dataset", "--scenes", "1", "--frames", "3", "--workers", "1", "--out", o], "dir"),
            ("train", lambda o: ["train", dataset, "--steps", "1", "--no-progress", "--out", o], "dir"),
            ("demo", lambda o: ["demo", "--scene", scene, "--steps", "3", "--no-model", "--out-dir", o], "dir"),
            ("plan", lambda o: ["plan", TASK, "--backend", "constraints", "--max-steps", "1", "--out", o], "dir"),
            ("evaluate", lambda o: ["evaluate", "--policy", "dynamics.policies:straight_push", "--tasks", TASK, "--backend",
                                    "constraints", "--max-steps", "1", "--no-record", "--out", o], "dir")):
        folder_target = {"npz": outdir, "json": json_dir, "rrd": rrd_dir, "dir": blocker}[target]
        name = "out-is-a-file" if target == "dir" else "out-is-a-folder"
        b.add(command, f"output:{name}", make(folder_target), (2,), (folder_target.name,))
        under = blocker / f"x.{target}" if target != "dir" else blocker / "sub"
        b.add(command, "output:parent-is-a-file", make(under), (2,), (blocker.name,), (under,))
        ro_out = ro_dir / command / (f"x.{target}" if target != "dir" else "sub")
        (ro_dir / command).mkdir(parents=True, exist_ok=True)
        b.add(command, "output:read-only-folder", make(ro_out), (2,), (command,), (ro_out,),
              readonly=str(ro_dir / command))
    return b.cases


_DROP = object()


class _Thing:
    """A pickled object that loading under ``weights_only=True`` must refuse."""


def counts(cases) -> dict[str, int]:
    """Bad inputs per command."""
    out: dict[str, int] = {}
    for c in cases:
        out[c.command] = out.get(c.command, 0) + 1
    return dict(sorted(out.items()))


if __name__ == "__main__":
    import tempfile

    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        cases = build(tmp)
        for command, n in counts(cases).items():
            print(f"{command:<9} {n:>4} bad inputs")
        print(f"{'total':<9} {len(cases):>4}")
