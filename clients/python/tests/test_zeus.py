"""carbonmon.zeus as a drop-in for zeus.monitor.carbon: names, arguments, defaults, results, exceptions."""
import dataclasses
import inspect
import os
from datetime import datetime

import pytest

import carbonmon
from carbonmon import zeus
from carbonmon.agent.v1 import agent_pb2
from carbonmon.zeus import (
    CarbonEmissionMeasurement,
    CarbonEmissionMonitor,
    ElectricityMapsClient,
    ElectrictyMapsClient,
    ZeusCarbonIntensityHTTPError,
    ZeusCarbonIntensityNotFoundError,
    get_ip_lat_long,
)

MICHIGAN = (42.2776, -83.7409)


def params(fn):
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values() if p.kind == p.POSITIONAL_OR_KEYWORD][1:]


def test_the_api_has_zeus_names_arguments_and_defaults():
    e = inspect.Parameter.empty
    assert params(CarbonEmissionMonitor.__init__) == [("carbon_intensity_provider", e), ("gpu_indices", None), ("cpu_indices", None), ("sync_execution_with", "torch")]
    assert params(CarbonEmissionMonitor.begin_window) == [("key", e), ("sync_execution", True)]
    assert params(CarbonEmissionMonitor.end_window) == [("key", e), ("sync_execution", True)]
    assert params(ElectrictyMapsClient.__init__) == [("location", e), ("estimate", False), ("emission_factor_type", "direct")]
    assert ElectricityMapsClient is ElectrictyMapsClient
    fields = [(f.name, f.default) for f in dataclasses.fields(CarbonEmissionMeasurement)]
    M = dataclasses.MISSING
    assert fields == [("time", M), ("gpu_energy", M), ("gpu_carbon_emission", M), ("cpu_energy", None),
                      ("cpu_carbon_emission", None), ("dram_energy", None), ("dram_carbon_emission", None)]
    for cls in (ZeusCarbonIntensityHTTPError, ZeusCarbonIntensityNotFoundError):
        assert issubclass(cls, carbonmon.CarbonIntensityError) and issubclass(cls, carbonmon.CarbonmonError)
        assert str(cls("message")) == "message"
    assert set(zeus.__all__) >= {"CarbonEmissionMonitor", "ElectrictyMapsClient", "CarbonEmissionMeasurement", "get_ip_lat_long",
                                 "ZeusCarbonIntensityHTTPError", "ZeusCarbonIntensityNotFoundError"}


def test_monitor_measures_windows_with_grams_per_gpu(agent_addr, powers_w, g_per_kwh):
    monitor = CarbonEmissionMonitor(ElectrictyMapsClient(MICHIGAN, estimate=True), agent=agent_addr)
    assert monitor.gpu_indices == list(range(len(powers_w)))
    monitor.begin_window("zeus/a", sync_execution=False)
    monitor.begin_window("zeus/b", sync_execution=False)  # overlapping windows, as in Zeus
    with pytest.raises(ValueError, match="already exists"):
        monitor.begin_window("zeus/a", sync_execution=False)
    a = monitor.end_window("zeus/a", sync_execution=False)
    b = monitor.end_window("zeus/b", sync_execution=False)
    with pytest.raises(ValueError, match="does not exist"):
        monitor.end_window("zeus/a", sync_execution=False)
    for m in (a, b):
        assert isinstance(m, CarbonEmissionMeasurement)
        assert sorted(m.gpu_energy) == [0, 1] and all(isinstance(k, int) for k in m.gpu_carbon_emission)
        for i in m.gpu_energy:
            assert m.gpu_carbon_emission[i] == pytest.approx(m.gpu_energy[i] / 3.6e6 * g_per_kwh, rel=1e-9)
        assert m.cpu_energy is None and m.dram_energy is None and m.cpu_carbon_emission is None
    assert b.time >= a.time


def test_provider_answers_through_the_intensity_service(em_history):
    provider = ElectrictyMapsClient(MICHIGAN, estimate=True, emission_factor_type="lifecycle")
    assert provider.get_current_carbon_intensity() == em_history[-1]["carbonIntensity"]
    recent = provider.get_recent_carbon_intensity()
    expected = {datetime.fromisoformat(p["datetime"].replace("Z", "+00:00")): p["carbonIntensity"] for p in em_history}
    assert recent == expected
    assert provider.update_period.total_seconds() == 3600 and provider.history_length == 24
    assert (provider.lat, provider.long, provider.estimate, provider.emission_factor_type) == (*MICHIGAN, True, "lifecycle")


def test_provider_errors_are_zeus_exceptions():
    with pytest.raises(ZeusCarbonIntensityNotFoundError):
        ElectrictyMapsClient((-60.0, 10.0), estimate=True).get_current_carbon_intensity()  # no zone there
    with pytest.raises(ZeusCarbonIntensityHTTPError, match="cannot reach the intensity service at 127.0.0.1:1"):
        ElectrictyMapsClient(MICHIGAN, intensity="127.0.0.1:1").get_current_carbon_intensity()


def test_get_ip_lat_long():
    assert "CARBONMON_IPINFO_URL" in os.environ
    assert get_ip_lat_long() == pytest.approx(MICHIGAN)


def test_a_window_without_grams_raises_with_its_energy():
    raw = agent_pb2.Measurement(key="k", time_s=1.0, gpu_energy_j={0: 5.0}, carbon_status=agent_pb2.CARBON_STATUS_DISABLED,
                                carbon_status_reason="no intensity service (CARBONMON_INTENSITY_ADDR)")
    with pytest.raises(ZeusCarbonIntensityNotFoundError, match="CARBONMON_INTENSITY_ADDR") as err:
        zeus.to_zeus(carbonmon.Measurement.from_proto(raw))
    assert err.value.measurement.gpu_energy == {0: 5.0}
    raw.carbon_status = agent_pb2.CARBON_STATUS_PENDING
    raw.carbon_status_reason = "UNAVAILABLE: the intensity service did not answer within 2000 ms"
    with pytest.raises(ZeusCarbonIntensityHTTPError, match="not priced yet"):
        zeus.to_zeus(carbonmon.Measurement.from_proto(raw))
