"""`hil run`'s DAQ config: the installation's nominal config, only the geometry from the plant."""

from __future__ import annotations

import subprocess
import sys

from chikyu_daq.config.model import load_config
from chikyu_daq.rig.session import REFERENCE, scenario_config, with_outputs
from hil.scenario import load_scenario

CLI = [sys.executable, "-m", "chikyu_daq"]
#: What the plant is, and the DAQ can only estimate: never copied into its config.
PLANT_TRUTH = ("rho_w_kg_m3", "rho_s_kg_m3", "rho_b_kg_m3", "g_m_s2", "friction_return")


def test_plant_truth_never_reaches_the_daq_config() -> None:
    sc = load_scenario("nominal")
    # the plant's true constants 3 % off nominal (densities keep their order), its geometry new
    truth = {k: 1.03 * getattr(sc.plant, k) for k in PLANT_TRUTH}
    geometry = {"return_id_m": 0.21, "riser_length_m": 480.0}
    depths = {"pt301": 470.0, "pt302": 240.0, "pt303": 40.0}
    plant = sc.plant.model_copy(update={**truth, **geometry, "transmitter_depths_m": depths})
    cfg = scenario_config(sc.model_copy(update={"plant": plant}))
    nominal = load_config(REFERENCE)
    got, want = cfg.physics.model_dump(), nominal.physics.model_dump()
    for key in ("rho_w_kg_m3", "rho_s_kg_m3", "rho_b_kg_m3", "g_m_s2", "darcy_f"):
        assert got[key] == want[key], key
    # the installation's geometry is known from its drawings: that is the plant's
    assert (got["return_id_m"], got["riser_length_m"]) == (0.21, 480.0)
    assert (got["depth_collector_m"], got["depth_mid_m"], got["depth_upper_m"]) == (470, 240, 40)
    # and nothing outside physics changes
    assert cfg.model_dump(exclude={"physics"}) == nominal.model_dump(exclude={"physics"})


def test_hil_outputs_per_scenario_and_a_bad_broker_address_exits_2() -> None:
    cfg = with_outputs(
        load_config(REFERENCE), name="heave", influx_url="http://127.0.0.1:8086", mqtt="h:1883"
    )
    influx, mqtt = cfg.outputs.influx, cfg.outputs.mqtt
    assert (influx.enabled, influx.dialect, influx.db) == (True, "v1", "hil_heave")
    assert (mqtt.enabled, mqtt.host, mqtt.port) == (True, "h", 1883)
    assert cfg.mqtt_prefix == "hil/heave" and mqtt.client_id == "chikyu-hil-heave"
    out = subprocess.run(
        [*CLI, "hil", "run", "--scenario", "nominal", "--mqtt", "no-port"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert "--mqtt: expected HOST:PORT" in out.stderr and "Traceback" not in out.stderr
