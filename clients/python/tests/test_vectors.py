"""Zeus's carbon vectors (its tests' windows over the recorded US-MIDW-MISO history) through carbonmon.zeus.

Zeus prices a window as Σ over UTC hours of (the window's energy in that hour) / 3.6e6 × (that hour's
intensity). The driver (test/e2e/python-package.test.ts) runs the agent on a clock that this test moves
through 2024-11-30/12-01 (POST CARBONMON_TEST_CONTROL/advance?to=ISO), with GPUs at constant levels except
near quarter hours, where every edge here falls, so each window's energy per hour is known from the
profile. The grams must be Zeus's: exactly (1e-9) on the agent's own split by hour with the recorded
intensities, and within the agent's reported error bound against the profile's energy. The windows
overlap, as Zeus's multi-window tests do.
"""
import json
import os
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest

from carbonmon.zeus import CarbonEmissionMonitor, ElectrictyMapsClient

pytestmark = pytest.mark.timetravel
QUARTER_S = 900


def advance(iso):
    url = f"{os.environ['CARBONMON_TEST_CONTROL']}/advance?to={iso}"
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=120) as resp:
        json.load(resp)


def at(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def zeus_grams(levels_w, quiet_s, history, begin, end):
    """Per GPU: Σ over the hours of [begin, end) of energy-in-hour / 3.6e6 × intensity(hour), as Zeus does.
    Energy: each quarter hour fully inside the window holds level × (900 − 2 × quiet) J."""
    intensity = {at(p["datetime"]): p["carbonIntensity"] for p in history}
    grams = [0.0] * len(levels_w)
    energy = [0.0] * len(levels_w)
    q = begin.replace(minute=begin.minute - begin.minute % 15, second=0, microsecond=0)  # edges lie in quiet margins
    while q + timedelta(seconds=QUARTER_S - quiet_s) <= end:
        hour = q.replace(minute=0, second=0, microsecond=0)
        for i, w in enumerate(levels_w):
            joules = w * (QUARTER_S - 2 * quiet_s)
            energy[i] += joules
            grams[i] += joules / 3.6e6 * intensity[hour]
        q += timedelta(seconds=QUARTER_S)
    return energy, grams


def test_zeus_vectors_over_the_recorded_history(agent_addr, em_history):
    if "CARBONMON_TEST_CONTROL" not in os.environ:
        pytest.skip("needs the e2e driver's clock control")
    levels = [float(w) for w in os.environ["CARBONMON_TEST_LEVELS_W"].split(",")]
    quiet = float(os.environ["CARBONMON_TEST_QUIET_S"])
    provider = ElectrictyMapsClient((42.2776, -83.7409), estimate=True, emission_factor_type="lifecycle")
    monitor = CarbonEmissionMonitor(provider, gpu_indices=list(range(len(levels))), agent=agent_addr)
    timeline = [  # (when, op, key): Zeus's one-day, multiple-window and single-window cases, on one clock
        ("2024-11-30T06:00:10Z", "begin", "day"),
        ("2024-12-01T04:30:10Z", "begin", "multi1"),
        ("2024-12-01T05:00:10Z", "begin", "multi2"),
        ("2024-12-01T05:30:10Z", "end", "multi1"),
        ("2024-12-01T05:30:10Z", "end", "multi2"),
        ("2024-12-01T05:30:10Z", "begin", "single"),
        ("2024-12-01T05:45:10Z", "end", "single"),
        ("2024-12-01T05:59:50Z", "end", "day"),  # the recorded history's last hour is 05:00-06:00
    ]
    begun, results = {}, {}
    for when, op, key in timeline:
        advance(when)
        if op == "begin":
            monitor.begin_window(key, sync_execution=False)
            begun[key] = at(when)
        else:
            results[key] = (monitor.end_window(key, sync_execution=False), begun[key], at(when))
    assert set(results) == {"day", "multi1", "multi2", "single"}
    recorded = {at(p["datetime"]): p["carbonIntensity"] for p in em_history}
    for key, (m, begin, end) in results.items():
        # Zeus's arithmetic on the agent's own split: each hour's joules × that hour's recorded intensity.
        periods = monitor.agent.get_window(key).raw.carbon_periods
        hours = [p.intensity.valid_from.ToDatetime().replace(tzinfo=timezone.utc) for p in periods]
        assert [p.intensity.g_per_kwh for p in periods] == [recorded[h] for h in hours], f"{key}: the recorded intensities"
        zeus_total = sum(p.energy_j / 3.6e6 * recorded[h] for p, h in zip(periods, hours))
        assert sum(m.gpu_carbon_emission.values()) == pytest.approx(zeus_total, rel=1e-9), key
        # Zeus's vectors per GPU, from the profile's energy: the same grams within the agent's own error bound.
        # (+1 mJ: the counter's resolution)
        uncertainty = {i: u + 1e-3 for i, u in monitor.agent.get_window(key).energy_uncertainty["gpu"].items()}
        energy, grams = zeus_grams(levels, quiet, em_history, begin, end)
        for i in range(len(levels)):
            assert abs(m.gpu_energy[i] - energy[i]) <= uncertainty[i], f"{key} gpu {i}: {m.gpu_energy[i]} J, profile {energy[i]} J ± {uncertainty[i]}"
            bound = uncertainty[i] / 3.6e6 * max(recorded.values())
            assert abs(m.gpu_carbon_emission[i] - grams[i]) <= bound, f"{key} gpu {i}: {m.gpu_carbon_emission[i]} g, Zeus {grams[i]} g"
    day_hours = {at(p["datetime"]) for p in em_history}
    assert len(day_hours) == 24, "the day window spans every recorded hour"
