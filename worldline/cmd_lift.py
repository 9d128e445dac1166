"""``worldline lift``: a scene file, point cloud or RGB-D frame into a saved particle scene."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from particles.scene_file import DEFAULT_MAX_PARTICLES
from worldline.errors import BadInput, check_output

RGBD_FORMAT = "worldline.rgbd"


def _load_rgbd(path: Path):
    from particles.io import FileFormatError, _NpzReader

    r = _NpzReader(path)
    try:
        r.check_format(RGBD_FORMAT)
        depth = r.get("depth")
        if depth.ndim != 2:
            raise FileFormatError(path, "depth", f"expected an (H, W) image, got shape {depth.shape}")
        intr = r.get("intrinsics")
        if intr.shape != (4,):
            raise FileFormatError(path, "intrinsics", f"expected (fx, fy, cx, cy), got shape {intr.shape}")
        pose = r.get("camera_to_world", required=False)
        if pose is not None and pose.shape != (4, 4):
            raise FileFormatError(path, "camera_to_world", f"expected a (4, 4) matrix, got shape {pose.shape}")
        mask = r.get("mask", required=False)
        if mask is not None and mask.shape != depth.shape:
            raise FileFormatError(path, "mask", f"expected shape {depth.shape} like depth, got {mask.shape}")
        if depth.dtype.kind not in "fiu":
            raise FileFormatError(path, "depth", f"expected real numbers (m, or raw with depth_scale), got dtype {depth.dtype}")
        if depth.size == 0:
            raise FileFormatError(path, "depth", f"is an empty image (shape {depth.shape})")
        if intr.dtype.kind not in "fiu" or not np.all(np.isfinite(intr)) or np.any(intr[:2] <= 0) \
                or np.abs(intr).max() > 1e7:
            raise FileFormatError(path, "intrinsics", f"expected finite (fx, fy, cx, cy) pixels with fx, fy > 0, "
                                                      f"got {intr.tolist() if intr.dtype.kind in 'fiu' else intr.dtype}")
        if pose is not None and (pose.dtype.kind not in "fiu" or not np.all(np.isfinite(pose))):
            raise FileFormatError(path, "camera_to_world", "expected a finite (4, 4) matrix")
        if mask is not None and mask.dtype.kind not in "iub":
            raise FileFormatError(path, "mask", f"expected integer instance ids, got dtype {mask.dtype}")
        scale = r.scalar("depth_scale", float, required=False, limit=1e9)
        if scale is not None and scale <= 0:
            raise FileFormatError(path, "depth_scale", f"must be positive (raw units per m), got {scale}")
        return depth, intr, pose, mask, scale or 1.0
    finally:
        r.close()


def summary_lines(scene, spacing: float, keypoints=None, edges=None) -> list[str]:
    """Human summary of a lifted scene: particles per object, spacing, bounds, graph sizes."""
    lines = [f"{scene.num_particles} particles in {scene.num_objects} objects, spacing {spacing:g} m "
             f"(radius {scene.radius:g} m)"]
    counts = np.bincount(scene.object_id, minlength=scene.num_objects)
    kinematic = scene.kinematic
    for k in range(scene.num_objects):
        tag = " (kinematic)" if counts[k] and kinematic[scene.object_id == k].all() else ""
        lines.append(f"  [{k}] {scene.object_name[k]:<12} {scene.object_material[k]:<9} {counts[k]:>7} particles{tag}")
    if scene.num_particles:
        lo, hi = scene.positions.min(0), scene.positions.max(0)
        lines.append("bounds: x [{:.3f}, {:.3f}]  y [{:.3f}, {:.3f}]  z [{:.3f}, {:.3f}] m".format(
            lo[0], hi[0], lo[1], hi[1], lo[2], hi[2]))
    ground = "none" if scene.ground is None else f"z = {scene.ground:g} m"
    lines.append(f"ground: {ground}; gravity {tuple(round(float(g), 3) for g in scene.gravity)} m/s^2")
    if keypoints is not None:
        lines.append(f"keypoints: {keypoints.num_keypoints} ({len(keypoints.edges)} keypoint edges, "
                     f"{keypoints.skin_index.shape[1]} per particle)")
    if edges is not None:
        deg = len(edges) / max(scene.num_particles, 1)
        lines.append(f"neighbour graph: {len(edges)} directed edges, mean degree {deg:.1f}")
    return lines


def register(app: typer.Typer) -> None:
    @app.command("lift")
    def lift(
        source: Optional[Path] = typer.Argument(None, help="Scene .toml, or a point cloud (.ply, .pcd, .xyz, .npz with 'points')."),
        out: Path = typer.Option(..., "--out", "-o", help="Where to write the particle scene (.npz)."),
        rgbd: Optional[Path] = typer.Option(None, "--rgbd", help="Lift an RGB-D frame instead: .npz with depth (H,W) m, "
                                            "intrinsics (fx,fy,cx,cy), optional camera_to_world (4,4) and mask (H,W)."),
        spacing: Optional[float] = typer.Option(None, help="Particle spacing in m (scene files set their own; "
                                                "clouds and RGB-D default to 0.02)."),
        material: str = typer.Option("rigid", help="Material of point-cloud / RGB-D objects."),
        ground: Optional[float] = typer.Option(None, help="Ground height z (m) for point clouds and RGB-D; none by default."),
        keypoints: int = typer.Option(16, min=0, help="Keypoints per object (farthest point sampling); 0 for none."),
        graph_radius: Optional[float] = typer.Option(None, help="Neighbour-graph radius in m; default 2.5 x spacing. "
                                                     "0 for no graph."),
        seed: int = typer.Option(0, help="Seed for keypoint sampling."),
        max_particles: int = typer.Option(DEFAULT_MAX_PARTICLES, "--max-particles", min=1,
                                          help="Refuse a scene file estimated (before anything is allocated) "
                                               "to need more particles than this."),
    ):
        """Turn a scene into particles with object ids, materials, keypoints and a neighbour graph.

        Examples:

          worldline lift assets/scenes/push_box.toml --out push_box.npz

          worldline lift assets/clouds/tabletop.ply --spacing 0.02 --out cloud.npz

          worldline lift --rgbd assets/rgbd/tabletop.npz --out frame.npz
        """
        from particles import MATERIALS, FileFormatError
        from particles.io import MAX_LENGTH
        from particles.graph import radius_graph
        from particles.io import save_scene
        from particles.keypoints import build_keypoints
        from particles.lift import lift_point_cloud, lift_rgbd, lift_scene, load_point_cloud
        from particles.scene_file import check_particle_budget, load_scene_file

        if (source is None) == (rgbd is None):
            raise BadInput("give exactly one input: a scene/cloud file, or --rgbd FRAME.npz")
        check_output(out)
        if material not in MATERIALS:
            raise BadInput(f"--material: unknown material {material!r}; expected one of {', '.join(MATERIALS)}")
        if spacing is not None and not (math.isfinite(spacing) and spacing > 0):
            raise BadInput(f"--spacing: must be a positive finite length (m), got {spacing}")
        if graph_radius is not None and not (math.isfinite(graph_radius) and graph_radius >= 0):
            raise BadInput(f"--graph-radius: must be a finite length >= 0 (m), got {graph_radius}")
        if ground is not None and not math.isfinite(ground):
            raise BadInput(f"--ground: must be a finite height (m), got {ground}")
        if rgbd is not None:
            if not rgbd.exists():
                raise BadInput(f"{rgbd}: no such file")
            depth, intr, pose, mask, scale = _load_rgbd(rgbd)
            spacing = spacing or 0.02
            scene = lift_rgbd(depth, intr, spacing, pose, mask, depth_scale=scale, material=material, ground=ground)
        elif source.suffix.lower() == ".toml":
            spec = load_scene_file(source)
            spacing_given = spacing is not None and spacing != spec.spacing
            if spacing_given:
                from dataclasses import replace

                spec = replace(spec, spacing=spacing)
            spacing = spec.spacing
            check_particle_budget(spec, max_particles, spacing_field="--spacing" if spacing_given else "world.spacing")
            scene = lift_scene(spec).scene
        else:
            pts, ids = load_point_cloud(source)
            if pts.size == 0:
                raise FileFormatError(source, "points", "holds no points")
            if np.iscomplexobj(pts) or not np.all(np.isfinite(pts)) or np.abs(pts).max() > MAX_LENGTH:
                raise FileFormatError(source, "points", f"expected finite real coordinates of at most "
                                                        f"{MAX_LENGTH:g} m")
            spacing = spacing or 0.02
            scene = lift_point_cloud(pts, spacing, ids, material, ground=ground)
        kp = build_keypoints(scene, per_object=keypoints, seed=seed) if keypoints > 0 else None
        radius = 2.5 * spacing if graph_radius is None else graph_radius
        # a lattice of pitch `spacing` has about (4/3) pi (R / spacing)^3 neighbours within R of a particle
        degree = 4.0 / 3.0 * math.pi * (radius / spacing) ** 3
        if radius > 0 and scene.num_particles * min(degree, scene.num_particles) > 40 * max_particles:
            raise BadInput(f"--graph-radius {radius:g} m: about {degree:.3g} neighbours per particle, "
                           f"{scene.num_particles * min(degree, scene.num_particles):.3g} edges, more than "
                           f"40 x --max-particles; use a radius of a few spacings ({spacing:g} m)")
        edges = radius_graph(scene.positions, radius, batch=scene.object_id) if radius > 0 else None
        save_scene(out, scene, kp, edges)
        for line in summary_lines(scene, spacing, kp, edges):
            typer.echo(line)
        typer.echo(f"wrote {out}")
