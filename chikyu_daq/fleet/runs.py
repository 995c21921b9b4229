"""Finding the runs of a fleet archive: a folder tree of run directories, or a list of them."""

from __future__ import annotations

from pathlib import Path

from chikyu_daq.store.reader import Run, RunError, open_run

#: Nested run directories are not searched below this depth (an archive is vessel/runs/run).
MAX_DEPTH = 6


class FleetError(Exception):
    """A fleet request that cannot run: no runs found, a bad override, a bad path."""


def _walk(folder: Path, depth: int, out: list[Path]) -> None:
    if (folder / "manifest.json").is_file():
        out.append(folder)
        return  # a run's own sub-folders (replay-*) are not runs of the fleet
    if depth >= MAX_DEPTH:
        return
    for child in sorted(p for p in folder.iterdir() if p.is_dir()):
        _walk(child, depth + 1, out)


def find_runs(paths: list[Path]) -> list[Path]:
    """Run directories named by `paths`: a run, a folder tree of runs, or a text file listing
    runs (one path a line, `#` comments). Order is kept, duplicates dropped."""
    found: list[Path] = []
    for p in paths:
        if p.is_file() and p.suffix in (".txt", ".lst"):
            lines = p.read_text(encoding="utf-8").splitlines()
            listed = [Path(s.strip()) for s in lines if s.strip() and not s.startswith("#")]
            found.extend(find_runs(listed))
        elif p.is_dir():
            _walk(p, 0, found)
        else:
            raise FleetError(f"not a run, a folder of runs or a list of runs: {p}")
    unique = list(dict.fromkeys(r.resolve() for r in found))
    if not unique:
        raise FleetError(
            f"no run directories (with manifest.json) under {', '.join(map(str, paths))}"
        )
    return unique


def vessel_of(run: Run) -> str:
    """The vessel a run was recorded on (its config snapshot's `site.vessel`)."""
    cfg = run.manifest.get("config") or {}
    vessel = (cfg.get("site") or {}).get("vessel")
    return str(vessel) if vessel else "unknown"


def open_runs(paths: list[Path]) -> list[Run]:
    """Every run of `paths`, opened; an unreadable manifest is a `FleetError` naming the run."""
    runs = []
    seen: dict[tuple[str, str], Path] = {}
    for p in find_runs(paths):
        try:
            run = open_run(p)
        except RunError as err:
            raise FleetError(str(err)) from None
        key = (vessel_of(run), run.run_id)
        if key in seen:  # both would write the same results partition
            raise FleetError(f"run {key[1]} of {key[0]} twice: {seen[key]} and {p}")
        seen[key] = p
        runs.append(run)
    return runs
