"""A drop-in for Zeus's carbon API (zeus.monitor.carbon), measured by a carbonmon agent.

Switching is one import line:

    # from zeus.monitor.carbon import CarbonEmissionMonitor, ElectrictyMapsClient, get_ip_lat_long
    from carbonmon.zeus import CarbonEmissionMonitor, ElectrictyMapsClient, get_ip_lat_long

Same names, argument names, defaults, results (dicts keyed by int) and exception names. What differs
(README, "From Python"): energy is measured by the agent at `agent` ("host:port", default
CARBONMON_AGENT_ADDR, else 127.0.0.1:50051), not in this process; grams come from the agent's windows,
priced per intensity period by its intensity service at the agent's CARBONMON_LOCATION (the provider
passed to the monitor is not asked for window grams); a window without grams raises
ZeusCarbonIntensityNotFoundError (carbon disabled) or ZeusCarbonIntensityHTTPError (the service did
not answer yet), each carrying the energy as `.measurement`.
"""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Dict, List, Optional, Tuple, Union

from ._agent import Agent, Measurement
from ._errors import CarbonIntensityError, CarbonmonError, WindowExistsError, WindowNotFoundError
from ._intensity import IntensityClient, Location
from ._sync import check_framework, sync_execution

__all__ = [
    "CarbonEmissionMeasurement",
    "CarbonEmissionMonitor",
    "CarbonIntensityProvider",
    "ElectricityMapsClient",
    "ElectrictyMapsClient",
    "ZeusCarbonIntensityHTTPError",
    "ZeusCarbonIntensityNotFoundError",
    "get_ip_lat_long",
]


class ZeusCarbonIntensityHTTPError(CarbonIntensityError):
    """The intensity service (or the agent's pricing) failed to answer."""

    def __init__(self, message: str, **kwargs) -> None:
        super().__init__(message, **kwargs)


class ZeusCarbonIntensityNotFoundError(CarbonIntensityError):
    """No carbon intensity for the location (or no grams for the window)."""

    def __init__(self, message: str, **kwargs) -> None:
        super().__init__(message, **kwargs)


def _zeus_error(err: CarbonmonError) -> CarbonIntensityError:
    cls = ZeusCarbonIntensityNotFoundError if err.code == "NOT_FOUND" else ZeusCarbonIntensityHTTPError
    return cls(str(err), code=err.code, details=err.details, hint=err.hint)


def get_ip_lat_long() -> Tuple[float, float]:
    """This machine's (latitude, longitude) from its IP address, as Zeus: ipinfo's "loc" field
    (CARBONMON_IPINFO_URL, default http://ipinfo.io/json)."""
    url = os.environ.get("CARBONMON_IPINFO_URL") or "http://ipinfo.io/json"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            lat, lon = map(float, json.load(resp)["loc"].split(","))
            return lat, lon
    except (OSError, ValueError, KeyError) as exc:
        raise ZeusCarbonIntensityHTTPError(f"cannot get this machine's location from {url}: {exc}") from exc


class CarbonIntensityProvider:
    """Zeus's provider interface: current and recent (24 h) carbon intensity of a location."""

    def get_current_carbon_intensity(self) -> float:
        raise NotImplementedError

    def get_recent_carbon_intensity(self) -> Dict[datetime, float]:
        raise NotImplementedError

    @property
    def update_period(self) -> timedelta:
        return timedelta(hours=1)

    @property
    def history_length(self) -> int:
        return 24


class ElectrictyMapsClient(CarbonIntensityProvider):
    """Zeus's ElectricityMaps provider (Zeus's spelling), answered by the carbonmon intensity service at
    `intensity` ("host:port", default CARBONMON_INTENSITY_ADDR, else 127.0.0.1:50061), which holds the
    API key, caches and falls back. `location`: (latitude, longitude) as in Zeus, or a zone ("DE").
    `estimate` allows estimated values; `emission_factor_type` is "direct" or "lifecycle"."""

    def __init__(self, location: Union[Tuple[float, float], str], estimate: bool = False,
                 emission_factor_type: str = "direct", *, intensity: Optional[str] = None) -> None:
        self.location = location
        if not isinstance(location, str):
            self.lat, self.long = location
        self.estimate = estimate
        self.emission_factor_type = emission_factor_type
        self._client = IntensityClient(intensity)

    def _location(self) -> Location:
        return self.location if isinstance(self.location, str) else (self.lat, self.long)

    def get_current_carbon_intensity(self) -> float:
        try:
            return self._client.current(self._location(), self.emission_factor_type, self.estimate).g_per_kwh
        except CarbonmonError as err:
            raise _zeus_error(err) from None

    def get_recent_carbon_intensity(self) -> Dict[datetime, float]:
        try:
            return self._client.recent(self._location(), self.emission_factor_type, self.estimate)
        except CarbonmonError as err:
            raise _zeus_error(err) from None


#: The correct spelling, for new code.
ElectricityMapsClient = ElectrictyMapsClient


@dataclass
class CarbonEmissionMeasurement:
    """Zeus's result of one window: seconds, joules and grams of CO2eq per device index."""

    time: float
    gpu_energy: Dict[int, float]
    gpu_carbon_emission: Dict[int, float]
    cpu_energy: Optional[Dict[int, float]] = None
    cpu_carbon_emission: Optional[Dict[int, float]] = None
    dram_energy: Optional[Dict[int, float]] = None
    dram_carbon_emission: Optional[Dict[int, float]] = None


class CarbonEmissionMonitor:
    """Zeus's CarbonEmissionMonitor on a carbonmon agent: windows by key, energy and grams per device.

    `gpu_indices` are this process's framework indices (CUDA_VISIBLE_DEVICES is sent along); None: every
    GPU this process sees. `sync_execution_with` ("torch", "jax", "cupy") waits for queued GPU work before
    each edge's RPC when `sync_execution=True`, exactly as Zeus does.
    """

    def __init__(self, carbon_intensity_provider: CarbonIntensityProvider, gpu_indices: Optional[List[int]] = None,
                 cpu_indices: Optional[List[int]] = None, sync_execution_with: str = "torch", *,
                 agent: Union[Agent, str, None] = None) -> None:
        check_framework(sync_execution_with)
        self.carbon_intensity_provider = carbon_intensity_provider
        self.sync_execution_with = sync_execution_with
        self.agent = agent if isinstance(agent, Agent) else Agent(agent)
        self.gpu_indices = list(gpu_indices) if gpu_indices is not None else list(range(self.agent.gpu_count()))
        self.cpu_indices = list(cpu_indices) if cpu_indices is not None else None
        self.current_keys: set = set()

    def _sync(self) -> None:
        sync_execution(self.gpu_indices, self.sync_execution_with)

    def begin_window(self, key: str, sync_execution: bool = True) -> None:
        if key in self.current_keys:
            raise ValueError(f"Measurement window '{key}' already exists")
        if sync_execution:
            self._sync()
        try:
            self.agent.begin_window(key, gpu_indices=self.gpu_indices, cpu_indices=self.cpu_indices,
                                    skip_gpus=not self.gpu_indices, labels={"client": "carbonmon.zeus"})
        except WindowExistsError as err:
            raise WindowExistsError(f"Measurement window '{key}' already exists on the agent at {self.agent.address}", err.code, err.details) from None
        self.current_keys.add(key)

    def end_window(self, key: str, sync_execution: bool = True) -> CarbonEmissionMeasurement:
        if key not in self.current_keys:
            raise ValueError(f"Measurement window '{key}' does not exist")
        if sync_execution:
            self._sync()
        try:
            m = self.agent.end_window(key)
        except WindowNotFoundError:
            self.current_keys.discard(key)
            raise
        self.current_keys.discard(key)
        return to_zeus(m, self.agent.address)


def to_zeus(m: Measurement, address: str = "") -> CarbonEmissionMeasurement:
    """A carbonmon Measurement as Zeus's result; a window without grams raises (see the module's doc)."""
    if m.gpu_carbon_emission is None:
        reason = m.carbon_status_reason or m.carbon_status
        if m.carbon_status == "PENDING" and "NOT_FOUND" not in reason:
            raise ZeusCarbonIntensityHTTPError(f"window '{m.key}': carbon not priced yet by the agent at {address}: {reason}", measurement=m)
        raise ZeusCarbonIntensityNotFoundError(f"window '{m.key}': no carbon from the agent at {address} ({m.carbon_status}): {reason}", measurement=m)
    return CarbonEmissionMeasurement(
        time=m.time,
        gpu_energy=m.gpu_energy,
        gpu_carbon_emission=m.gpu_carbon_emission,
        cpu_energy=m.cpu_energy,
        cpu_carbon_emission=m.cpu_carbon_emission,
        dram_energy=m.dram_energy,
        dram_carbon_emission=m.dram_carbon_emission,
    )
