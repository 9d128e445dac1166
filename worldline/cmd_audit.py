"""``worldline audit ROLLOUT``: name the time, place and kind of every physical glitch.

Exit codes: 0 clean, 1 glitches found, 2 bad input (one line naming the file and field).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from worldline.errors import BadInput, check_output

EXIT_GLITCHES = 1




def register(app: typer.Typer) -> None:
    @app.command("audit")
    def audit_cmd(
        rollout: Path = typer.Argument(..., help="A rollout .npz, a GNS dataset folder (every trajectory of every "
                                                 "split), or a bare positions (T,N,3) .npy/.npz."),
        json_path: Optional[Path] = typer.Option(None, "--json", help="Write the report (JSON v1) here, atomically."),
        fmt: str = typer.Option("table", "--format", help="What to print: table or json."),
        checks: Optional[str] = typer.Option(None, "--checks", help="Comma-separated subset of checks to run "
                                             "(penetration,teleport,vanish,rigidity,floating,energy,jitter)."),
        contact_tolerance: Optional[float] = typer.Option(
            None, help="Penetration allowed, particle radii. Default: critic.AuditConfig."),
        contact_margin: Optional[float] = typer.Option(
            None, help="Gap still counted as touching, particle radii. Default: critic.AuditConfig."),
        teleport_tolerance: Optional[float] = typer.Option(
            None, help="Extra one-frame jump allowed, particle radii. Default: critic.AuditConfig."),
        rigidity_tolerance: Optional[float] = typer.Option(
            None, help="Rigid-fit residual allowed, particle radii. Default: critic.AuditConfig."),
        floating_tolerance: Optional[float] = typer.Option(
            None, help="Deviation from free fall allowed, in |g|. Default: critic.AuditConfig."),
        floating_window: Optional[float] = typer.Option(
            None, help="Window of the free-fall test, s. Default: critic.AuditConfig."),
        energy_tolerance: Optional[float] = typer.Option(
            None, help="Unsourced energy gain allowed, as a lift in particle radii. Default: critic.AuditConfig."),
        jitter_amplitude: Optional[float] = typer.Option(
            None, help="Noise-floor oscillation amplitude, particle radii. Default: critic.AuditConfig."),
        jitter_window: Optional[float] = typer.Option(
            None, help="Window of the jitter test, s. Default: critic.AuditConfig."),
        collapse_fraction: Optional[float] = typer.Option(
            None, help="Volume fraction below which an object has collapsed. Default: critic.AuditConfig."),
        workers: Optional[int] = typer.Option(
            None, help="Threads for per-object array work. Default: critic.AuditConfig."),
        dt: Optional[float] = typer.Option(
            None, "--dt", help="Frame time in s for an input that has none (a bare positions array, or a rollout "
                               "without a dt field); a file's own dt is always used. Without it such files exit 2."),
        fps: Optional[float] = typer.Option(
            None, "--fps", help="Frames per second of point tracks (a TAP-Vid-3D .npz: tracks_XYZ, visibility, "
                                "fx_fy_cx_cy); required for them, as they carry no frame time."),
        up: Optional[str] = typer.Option(
            None, "--up", help="Point tracks: the up direction X,Y,Z in the file's frame (camera coordinates, or the "
                               "extrinsics' world), overriding the free-fall / ground-plane estimate."),
        scale: float = typer.Option(1.0, "--scale", help="Point tracks: multiply every length by S (monocular depth "
                                                         "known up to scale)."),
        radius: Optional[float] = typer.Option(
            None, "--radius", help="Point tracks: particle radius in m (default: half the tracks' spacing on their "
                                   "objects)."),
    ) -> None:
        """Audit a rollout for physical glitches: penetration, teleport, vanish, rigidity, floating, energy, jitter.

        Exit code 0 when clean, 1 when glitches are found, 2 on bad input.

        Example: ``worldline audit rollout.npz --json report.json``; a bare array without a frame
        time: ``worldline audit positions.npy --dt 0.0166667``; point tracks of a 30 fps video (TAP-Vid-3D):
        ``worldline audit tracks.npz --fps 30`` (``--up 0,-1,0``, ``--scale 1.0``, ``--radius 0.01`` to override
        the estimates; objects are grouped by rigid motion, occluded points are missing data).
        """
        from tqdm import tqdm

        from critic import AuditConfig, audit, load_audit_input
        from particles.io import atomic_write

        if fmt not in ("table", "json"):
            raise BadInput(f"--format: expected 'table' or 'json', got {fmt!r}")
        if json_path is not None:
            check_output(json_path, "--json")
        given = dict(contact_tolerance=contact_tolerance, contact_margin=contact_margin,
                     teleport_tolerance=teleport_tolerance, rigidity_tolerance=rigidity_tolerance,
                     floating_tolerance=floating_tolerance, floating_window=floating_window,
                     energy_tolerance=energy_tolerance, jitter_amplitude=jitter_amplitude,
                     jitter_window=jitter_window, collapse_fraction=collapse_fraction, workers=workers)
        values = {k: v for k, v in given.items() if v is not None}  # the rest keep AuditConfig's defaults
        if checks:
            values["checks"] = tuple(c.strip() for c in checks.split(",") if c.strip())
        try:
            config = AuditConfig(**values)
        except ValueError as exc:  # names the field: map it back to its flag
            field = str(exc).split(":")[0]
            raise BadInput(f"--{field.replace('_', '-')}: {str(exc).split(': ', 1)[-1]}") from None
        from critic.tracks import audit_tracks, is_tracks_file
        from worldline.errors import check_number

        check_number(scale, "--scale", positive=True)
        check_number(radius, "--radius", positive=True)
        check_number(fps, "--fps", positive=True)
        up_vec = None
        if up is not None:
            try:
                up_vec = [float(v) for v in up.split(",")]
            except ValueError:
                up_vec = []
            import math

            if len(up_vec) != 3 or not all(math.isfinite(v) for v in up_vec) or not any(up_vec):
                raise BadInput(f"--up: expected three numbers X,Y,Z not all zero, got {up!r}")
        if is_tracks_file(rollout):
            if fps is None:
                raise BadInput(f"--fps: required for point tracks ({rollout} is a TAP-Vid-3D file and carries no frame "
                               "time), e.g. --fps 30")
            bar = tqdm(total=len(config.checks) * 2, desc="audit", unit="check", file=sys.stderr, disable=None,
                       leave=False)
            try:
                reports = [audit_tracks(rollout, fps, up=up_vec, scale=scale, radius=radius, config=config,
                                        progress=lambda _name: bar.update(1))]
            except ValueError as exc:
                if type(exc) is not ValueError:
                    raise
                raise BadInput(f"{rollout}: {exc}") from None
            bar.close()
        else:
            items = load_audit_input(rollout, dt=dt)
            reports = []
            bar = tqdm(total=len(items) * len(config.checks), desc="audit", unit="check", file=sys.stderr,
                       disable=None, leave=False)
            for source, ro in items:
                bar.set_postfix_str(Path(source).name[-40:])
                reports.append(audit(ro, config, source=source, progress=lambda _name: bar.update(1)))
            bar.close()
        if len(reports) == 1 and not rollout.is_dir():
            doc = reports[0].to_dict()
        else:
            doc = {"version": 1, "source": str(rollout), "reports": [r.to_dict() for r in reports]}
        if json_path is not None:
            text = json.dumps(doc, indent=2) + "\n"
            atomic_write(json_path, lambda f: f.write(text), mode="w")
        if fmt == "json":
            typer.echo(json.dumps(doc, indent=2))
        else:
            for r in reports:
                typer.echo(r.table())
            if len(reports) > 1:
                n = sum(len(r.events) for r in reports)
                typer.echo(f"{n} event(s) in {sum(not r.clean for r in reports)} of {len(reports)} trajectories")
        if any(not r.clean for r in reports):
            raise SystemExit(EXIT_GLITCHES)  # main() maps it to the exit code
