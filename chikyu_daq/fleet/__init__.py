"""Replay at scale on Dask: many runs, parameter sweeps and long runs split in time.

Each run is one Dask task that reads its own Parquet and writes its own results (the client
passes paths and small config dicts, never arrays). Results land as one Parquet dataset
partitioned `vessel=/run=/day=` that DuckDB, polars and pandas read directly, next to a fleet
summary (one row per run). See DESIGN "Scale".
"""

from chikyu_daq.fleet.runs import FleetError, find_runs, vessel_of

__all__ = ["FleetError", "find_runs", "vessel_of"]
