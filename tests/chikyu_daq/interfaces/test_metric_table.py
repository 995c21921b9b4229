"""`metrics.toml`, the table of which `stats()` key becomes which Prometheus metric."""

from __future__ import annotations

from pathlib import Path

import pytest

from chikyu_daq.interfaces.prometheus import METRICS, families, load_metrics


def test_every_row_of_every_section_is_exported_once() -> None:
    stats: dict = {"devices": {"d1": {"state": "ok"}}, "buses": {"b1": {}}, "outputs": {}}
    for section, rows in METRICS.items():
        home = {"devices": stats["devices"]["d1"], "buses": stats["buses"]["b1"]}.get(section)
        if home is None:
            home = stats if section == "pipeline" else stats.setdefault(section, {})
            if section == "outputs":  # nested one dict per sink: the exporter flattens it
                home = stats["outputs"].setdefault("influx", {})
        for key, *_ in rows:
            home[key] = 1
    names = [fam.name for fam in families(stats, "v")]
    want = [f"chikyu_{name}" for rows in METRICS.values() for _, name, _, _ in rows]
    assert sorted(names) == sorted([*want, "chikyu_device_up"])
    assert len(set(names)) == len(names)


def test_a_malformed_row_names_its_section_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "metrics.toml"
    bad.write_text('[clock]\nsteps = ["clock_steps", "histogram", "Steps"]\n')
    with pytest.raises(ValueError, match=r"\[clock\] steps"):
        load_metrics(bad)
