"""Regenerate the shipped assets: a mesh, a point cloud and a synthetic RGB-D frame.

    python assets/make_assets.py

Deterministic (seed 0). The scene .toml files are written by hand and not touched here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 0


def make_ring(path: Path) -> None:
    """A torus 'ring' (major radius 6 cm, minor 3 cm) as OBJ, in metres, centred on the origin."""
    import trimesh

    mesh = trimesh.creation.torus(major_radius=0.06, minor_radius=0.03, major_sections=48, minor_sections=16)
    mesh.export(path)


def make_cloud(path: Path) -> None:
    """A noisy scan-like PLY: the surfaces of a 12 cm box and a 5 cm sphere on a 40 cm ground patch."""
    import open3d as o3d
    import trimesh

    rng = np.random.default_rng(SEED)
    box = trimesh.creation.box(extents=(0.12, 0.12, 0.12))
    box.apply_translation((-0.08, 0.0, 0.06))
    ball = trimesh.creation.icosphere(subdivisions=3, radius=0.05)
    ball.apply_translation((0.1, 0.02, 0.05))
    pts = [trimesh.sample.sample_surface(m, 4000, seed=SEED)[0] for m in (box, ball)]
    ground = np.column_stack([rng.uniform(-0.2, 0.2, 3000), rng.uniform(-0.2, 0.2, 3000), np.zeros(3000)])
    cloud = np.concatenate(pts + [ground]) + rng.normal(0.0, 0.001, (11000, 3))
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud))
    o3d.io.write_point_cloud(str(path), pc, write_ascii=False)


def make_rgbd(path: Path) -> None:
    """A 160x120 depth frame (m) of a box and a sphere on the ground, with an instance mask
    (0 ground, 1 box, 2 sphere), pinhole intrinsics and the camera-to-world pose, rendered by
    ray casting with open3d."""
    import open3d as o3d
    import trimesh

    w, h, fx, fy = 160, 120, 140.0, 140.0
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    meshes = [trimesh.creation.box(extents=(1.0, 1.0, 0.02)), trimesh.creation.box(extents=(0.1, 0.1, 0.1)),
              trimesh.creation.icosphere(subdivisions=3, radius=0.05)]
    meshes[0].apply_translation((0, 0, -0.01))
    meshes[1].apply_translation((-0.07, 0.0, 0.05))
    meshes[2].apply_translation((0.08, 0.03, 0.05))
    scene = o3d.t.geometry.RaycastingScene()
    ids = []
    for m in meshes:
        tm = o3d.t.geometry.TriangleMesh.from_legacy(o3d.geometry.TriangleMesh(
            o3d.utility.Vector3dVector(m.vertices), o3d.utility.Vector3iVector(m.faces)))
        ids.append(scene.add_triangles(tm))
    # camera 0.5 m back and 0.4 m up, looking at the origin (OpenCV axes: x right, y down, z forward)
    eye, target = np.array([-0.5, 0.0, 0.4]), np.zeros(3)
    fwd = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(fwd, [0, 0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, fwd, eye
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    dirs_cam = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u, float)], -1)
    dirs = dirs_cam @ pose[:3, :3].T
    rays = np.concatenate([np.broadcast_to(eye, dirs.shape), dirs], -1).astype(np.float32)
    ans = scene.cast_rays(o3d.core.Tensor(rays))
    t_hit = ans["t_hit"].numpy()
    geom = ans["geometry_ids"].numpy()
    depth = np.where(np.isfinite(t_hit), t_hit, 0.0).astype(np.float32)  # t along (u, v, 1) is the z-depth
    mask = np.zeros((h, w), np.int32)
    for label, gid in enumerate(ids):
        mask[geom == gid] = label
    mask[depth == 0] = 0
    np.savez_compressed(path, depth=depth, mask=mask, intrinsics=np.array([fx, fy, cx, cy]), camera_to_world=pose,
                        format=np.array("worldline.rgbd"), format_version=np.int32(1))


def main() -> None:
    make_ring(HERE / "meshes" / "ring.obj")
    make_cloud(HERE / "clouds" / "tabletop.ply")
    make_rgbd(HERE / "rgbd" / "tabletop.npz")
    for p in sorted(HERE.glob("*/*.*")):
        print(f"{p.relative_to(HERE)}  {p.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
