"""sync_execution as Zeus does it, before each edge's RPC: stand-in torch, jax and cupy modules record
their calls in the same log as the RPCs leaving the client."""
import sys

import pytest

import carbonmon
from carbonmon.zeus import CarbonEmissionMonitor, ElectrictyMapsClient

PROVIDER = ElectrictyMapsClient((42.2776, -83.7409))

EXPECTED = {
    "torch": ["torch.cuda.synchronize(0)", "torch.cuda.synchronize(1)"],
    "jax": ["jax.device_put(0.0, gpu:0)", "jax gpu:0 + 0", "jax.device_put(0.0, gpu:1)", "jax gpu:1 + 0",
            "jax.device_put(0.0, cpu:0)", "jax cpu:0 + 0", "jax.block_until_ready(gpu:0, gpu:1, cpu:0)"],
    "cupy": ["cupy.cuda.Device(0).synchronize()", "cupy.cuda.Device(1).synchronize()"],
}


@pytest.mark.parametrize("framework", ["torch", "jax", "cupy"])
def test_monitor_syncs_before_each_edge_rpc(framework, frameworks, recorded_agent):
    monitor = CarbonEmissionMonitor(PROVIDER, gpu_indices=[0, 1], sync_execution_with=framework, agent=recorded_agent)
    monitor.begin_window(f"py/sync-{framework}")
    assert frameworks == EXPECTED[framework] + ["rpc BeginWindow"]
    frameworks.clear()
    result = monitor.end_window(f"py/sync-{framework}")
    assert frameworks == EXPECTED[framework] + ["rpc EndWindow"]
    assert sorted(result.gpu_energy) == [0, 1]


def test_sync_execution_false_skips_the_framework(frameworks, recorded_agent):
    monitor = CarbonEmissionMonitor(PROVIDER, gpu_indices=[0, 1], sync_execution_with="torch", agent=recorded_agent)
    monitor.begin_window("py/nosync", sync_execution=False)
    monitor.end_window("py/nosync", sync_execution=False)
    assert frameworks == ["rpc BeginWindow", "rpc EndWindow"]


def test_gpu_indices_none_syncs_every_gpu_the_process_sees(frameworks, recorded_agent):
    monitor = CarbonEmissionMonitor(PROVIDER, sync_execution_with="cupy", agent=recorded_agent)
    assert monitor.gpu_indices == [0, 1]
    frameworks.clear()
    monitor.begin_window("py/allgpus")
    monitor.end_window("py/allgpus")
    assert frameworks == EXPECTED["cupy"] + ["rpc BeginWindow"] + EXPECTED["cupy"] + ["rpc EndWindow"]


def test_window_context_syncs_too(frameworks, recorded_agent):
    with carbonmon.window("py/ctx-sync", agent=recorded_agent, gpu_indices=[1], sync_execution_with="torch"):
        frameworks.append("body")
    assert frameworks == ["torch.cuda.synchronize(1)", "rpc BeginWindow", "body", "torch.cuda.synchronize(1)", "rpc EndWindow"]


@pytest.mark.parametrize("framework", ["torch", "jax", "cupy"])
def test_a_missing_framework_is_a_clear_error_before_any_rpc(framework, monkeypatch, call_log, recorded_agent):
    monkeypatch.setitem(sys.modules, framework, None)  # import fails as if not installed
    monitor = CarbonEmissionMonitor(PROVIDER, gpu_indices=[0], sync_execution_with=framework, agent=recorded_agent)
    with pytest.raises(carbonmon.FrameworkNotAvailableError) as err:
        monitor.begin_window(f"py/missing-{framework}")
    assert f"sync_execution_with='{framework}'" in str(err.value)
    assert "install it" in str(err.value)
    assert isinstance(err.value, RuntimeError), "Zeus raises RuntimeError here"
    assert call_log == [], "no window was begun"


def test_an_unknown_framework_is_refused_at_construction(recorded_agent):
    with pytest.raises(ValueError, match="sync_execution_with must be one of torch, jax, cupy"):
        CarbonEmissionMonitor(PROVIDER, gpu_indices=[0], sync_execution_with="tensorflow", agent=recorded_agent)
