"""``worldline view``: write a Rerun recording (and/or a PNG still) of a rollout, or open a recording."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from worldline.errors import BadInput, check_output

EXIT_BAD_INPUT = 2


def _open(path: Path) -> None:
    import viz

    if not viz.has_display():
        raise BadInput(f"cannot open {path}: no display here (DISPLAY/WAYLAND_DISPLAY unset); "
                       f"copy it to a machine with a display and run `rerun {path.name}`")
    viz.open_in_viewer(path)
    typer.echo(f"opened {path} in the Rerun viewer")


def view(
    path: Path = typer.Argument(..., help="A rollout .npz to record, or a .rrd recording to open.", show_default=False),
    report: Optional[Path] = typer.Option(None, "--report", help="Critic report JSON of this rollout (worldline audit --json)."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="Ground-truth rollout .npz of the same scene: adds truth particles, flow arrows, error plot."),
    truth_report: Optional[Path] = typer.Option(None, "--truth-report", help="Critic report JSON of the --truth rollout."),
    scene: Optional[Path] = typer.Option(None, "--scene", help="Lifted scene .npz (worldline lift) whose keypoints and neighbour graph to show."),
    out: Optional[Path] = typer.Option(None, "--out", help="Recording to write [default: ROLLOUT with suffix .rrd, unless only --png is given]."),
    png: Optional[Path] = typer.Option(None, "--png", help="Also draw a PNG still of a few frames (headless)."),
    spawn: bool = typer.Option(False, "--spawn", help="Open the recording in the Rerun viewer (needs a display)."),
    max_points: int = typer.Option(1_000_000, "--max-points", min=1, help="Most particles shown per frame; more are subsampled (seeded) with a notice."),
) -> None:
    """Show a rollout in Rerun: particles by object, tool, flows, critic events on the timeline, energy plots.

    The recording opens on a 3D view, energy and critic-severity plots and the event log.

    `worldline view FILE.rrd` opens an existing recording in the viewer.

    Examples:

      worldline view model.npz --report model.json --truth sim.npz --out run.rrd

      worldline view sim.npz --scene push_box.npz --png sim.png

      worldline view run.rrd
    """
    import viz
    from particles import load_rollout, load_scene

    if path.suffix == ".rrd":
        given = (("--report", report), ("--truth", truth), ("--truth-report", truth_report), ("--scene", scene),
                 ("--out", out), ("--png", png))
        extra = [flag for flag, v in given if v is not None]
        if extra:
            raise BadInput(f"{path} is already a recording; {', '.join(extra)} only go with a rollout .npz")
        try:
            viz.check_rrd(path)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        _open(path)
        return

    rollout = load_rollout(path, strict=False)
    truth_ro = load_rollout(truth, strict=False) if truth is not None else None
    if truth_report is not None and truth_ro is None:
        raise BadInput("--truth-report needs --truth (the rollout it audits)")
    keypoints = edges = None
    if scene is not None:
        sc, keypoints, edges = load_scene(scene)
        if sc.num_particles != rollout.scene.num_particles:
            raise BadInput(f"{scene}: has {sc.num_particles} particles, {path} {rollout.scene.num_particles}; "
                           "pass the lifted scene this rollout came from")
    if rollout.missing:
        typer.secho(f"note: {path} lacks {', '.join(rollout.missing)}; shown with defaults", fg=typer.colors.YELLOW, err=True)
    if out is None and (png is None or spawn):
        out = path.with_suffix(".rrd")
    if out is not None:
        if out.is_dir():
            raise BadInput(f"--out {out}: is a folder; give a file name ending in .rrd")
        if out.suffix != ".rrd":
            raise BadInput(f"--out {out}: a Rerun recording ends in .rrd")
        check_output(out)
    if png is not None:
        if png.suffix.lower() != ".png":
            raise BadInput(f"--png {png}: expected a .png file name")
        check_output(png, "--png")
    if out is not None:
        try:
            summary = viz.record(out, rollout, report, truth_ro, keypoints, edges, max_points=max_points,
                                 name=path.stem, progress=True, truth_report=truth_report)
        except OSError as exc:
            raise BadInput(f"cannot write {out}: {exc.strerror or exc}") from None
        for notice in summary.notices:
            typer.secho(f"note: {notice}", fg=typer.colors.YELLOW, err=True)
        shown = "" if summary.points_per_frame == summary.particles else f" ({summary.points_per_frame} shown)"
        truth_events = f", truth {summary.truth_events}" if truth_report is not None else ""
        typer.echo(f"wrote {out}: {summary.frames} frames, {summary.particles} particles{shown}, "
                   f"{summary.events} critic event{'' if summary.events == 1 else 's'}{truth_events}")
    if png is not None:
        try:
            viz.render_png(png, rollout, report)
        except OSError as exc:
            raise BadInput(f"cannot write {png}: {exc.strerror or exc}") from None
        typer.echo(f"wrote {png}")
    if spawn:
        _open(out)


def register(app: typer.Typer) -> None:
    """Add ``worldline view`` to the app."""
    app.command("view")(view)
