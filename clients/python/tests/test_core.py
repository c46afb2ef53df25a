"""carbonmon's own API against a real agent (two fake GPUs at constant power) pricing at a known intensity."""
import time

import pytest

import carbonmon


def test_window_measures_the_block(agent_addr, powers_w, g_per_kwh):
    with carbonmon.window("py/core-1", agent=agent_addr, labels={"step": "1"}) as w:
        assert w.measurement is None
        time.sleep(0.3)  # the workload
    m = w.measurement
    assert m.key == "py/core-1" and m.ended
    assert m.time >= 0.3
    assert sorted(m.gpu_energy) == list(range(len(powers_w)))
    for i, p in enumerate(powers_w):
        assert m.gpu_energy[i] == pytest.approx(p * m.time, rel=0.15, abs=10)
        assert m.gpu_carbon_emission[i] == pytest.approx(m.gpu_energy[i] / 3.6e6 * g_per_kwh, rel=1e-9)
    assert m.cpu_energy is None and m.cpu_carbon_emission is None, "no RAPL on this agent"
    assert m.carbon_status in ("FINAL", "PROVISIONAL")
    assert m.labels == {"step": "1"}
    assert m.total_energy == pytest.approx(sum(m.gpu_energy.values()))


def test_window_ends_when_the_block_raises(agent_addr):
    with pytest.raises(KeyError):
        with carbonmon.window("py/core-raises", agent=agent_addr) as w:
            raise KeyError("boom")
    assert w.measurement is not None and w.measurement.ended


def test_default_agent_from_the_environment(monkeypatch, agent_addr):
    monkeypatch.setattr(carbonmon._window, "_default", None)
    monkeypatch.setenv("CARBONMON_AGENT_ADDR", agent_addr)
    with carbonmon.window("py/core-default") as w:
        pass
    assert carbonmon.default_agent().address == agent_addr
    assert w.measurement.ended


def test_watch_power_is_an_iterator_and_break_cancels(agent_addr, powers_w):
    samples = []
    for sample in carbonmon.watch_power(0.2, agent=agent_addr):
        samples.append(sample)
        if len(samples) == 3:
            break
    assert [s.sequence for s in samples] == [0, 1, 2]
    assert samples[-1].gpu_power == pytest.approx({i: p for i, p in enumerate(powers_w)}, rel=0.05)
    assert samples[-1].time is not None and samples[-1].time.tzinfo is not None


def test_errors_are_typed_and_name_the_agent(agent_addr):
    agent = carbonmon.Agent(agent_addr)
    with pytest.raises(carbonmon.WindowNotFoundError) as nf:
        agent.end_window("py/never-begun")
    assert isinstance(nf.value, ValueError) and nf.value.code == "NOT_FOUND"
    agent.begin_window("py/core-twice")
    with pytest.raises(carbonmon.WindowExistsError):
        agent.begin_window("py/core-twice")
    agent.cancel_window("py/core-twice")
    with pytest.raises(carbonmon.InvalidRequestError) as bad:
        agent.begin_window("bad key with spaces")
    assert bad.value.code == "INVALID_ARGUMENT"
    down = carbonmon.Agent("127.0.0.1:1", timeout=5)
    with pytest.raises(carbonmon.AgentUnavailableError, match=r"cannot reach the agent at 127\.0\.0\.1:1"):
        down.begin_window("py/down")
    assert all(isinstance(e, carbonmon.CarbonmonError) for e in (nf.value, bad.value))


def test_best_window_from_the_intensity_service(intensity_addr, g_per_kwh):
    """GetBestWindow through the Python client: the static provider's flat series says waiting changes nothing."""
    from datetime import timedelta

    import carbonmon

    client = carbonmon.IntensityClient(intensity_addr)
    try:
        best = client.best_window(["DE"], timedelta(hours=1), within=timedelta(hours=3), energy_kwh=2)
    finally:
        client.close()
    assert best.candidates, best
    first = best.candidates[0]
    assert first.zone == "DE"
    assert first.mean_g_per_kwh == g_per_kwh
    assert abs(first.carbon_g - 2 * g_per_kwh) < 1e-9
    assert first.end - first.start == timedelta(hours=1)
    assert first.is_forecast is False
    assert [c.zone for c in best.run_now] == ["DE"]
