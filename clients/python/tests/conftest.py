"""Fixtures for the package's tests. They run against a real agent and intensity service that
test/e2e/python-package.test.ts starts, and learn where from the environment:

CARBONMON_AGENT_ADDR, CARBONMON_INTENSITY_ADDR   the servers
CARBONMON_TEST_POWER_W      the fake GPUs' constant power, e.g. "300,150"
CARBONMON_TEST_G_PER_KWH    the intensity the agent prices its windows at (static provider)
CARBONMON_TEST_EM_HISTORY   the history the imitation ElectricityMaps serves (JSON, ElectricityMaps' shape)
CARBONMON_TEST_CONTROL      time-travel tests only: the driver's control URL (POST /advance?to=ISO)
"""
import json
import os
import sys
import types

import grpc
import pytest


def env(name):
    value = os.environ.get(name)
    if value is None:
        pytest.skip(f"{name} is not set: run through test/e2e/python-package.test.ts")
    return value


@pytest.fixture
def agent_addr():
    return env("CARBONMON_AGENT_ADDR")


@pytest.fixture
def intensity_addr():
    return env("CARBONMON_INTENSITY_ADDR")


@pytest.fixture
def powers_w():
    return [float(p) for p in env("CARBONMON_TEST_POWER_W").split(",")]


@pytest.fixture
def g_per_kwh():
    return float(env("CARBONMON_TEST_G_PER_KWH"))


@pytest.fixture
def em_history():
    with open(env("CARBONMON_TEST_EM_HISTORY")) as f:
        return json.load(f)["history"]


class Recorder(grpc.UnaryUnaryClientInterceptor):
    """Records every unary RPC as it leaves, into the same log the stand-in frameworks write to."""

    def __init__(self, log):
        self.log = log

    def intercept_unary_unary(self, continuation, details, request):
        self.log.append("rpc " + details.method.rsplit("/", 1)[1])
        return continuation(details, request)


@pytest.fixture
def call_log():
    return []


@pytest.fixture
def recorded_agent(agent_addr, call_log):
    """An Agent whose RPCs are logged into call_log."""
    from carbonmon import Agent

    channel = grpc.intercept_channel(grpc.insecure_channel(agent_addr), Recorder(call_log))
    agent = Agent(agent_addr, channel=channel, cuda_visible_devices=None)
    yield agent
    agent.close()


@pytest.fixture
def frameworks(monkeypatch, call_log):
    """Stand-in torch, jax and cupy modules that log the calls sync_execution makes."""

    class Future:
        def __init__(self, name):
            self.name = name

        def __add__(self, other):
            call_log.append(f"jax {self.name} + {other}")
            return self

    torch = types.ModuleType("torch")
    torch.cuda = types.SimpleNamespace(synchronize=lambda i: call_log.append(f"torch.cuda.synchronize({i})"))

    jax = types.ModuleType("jax")
    jax.devices = lambda kind: [f"{kind}:{i}" for i in range(8)]

    def device_put(value, device):
        call_log.append(f"jax.device_put({value}, {device})")
        return Future(device)

    jax.device_put = device_put
    jax.block_until_ready = lambda futures: call_log.append("jax.block_until_ready(" + ", ".join(f.name for f in futures) + ")")

    cupy = types.ModuleType("cupy")

    class Device:
        def __init__(self, i):
            self.i = i

        def synchronize(self):
            call_log.append(f"cupy.cuda.Device({self.i}).synchronize()")

    cupy.cuda = types.SimpleNamespace(Device=Device)
    for name, module in (("torch", torch), ("jax", jax), ("cupy", cupy)):
        monkeypatch.setitem(sys.modules, name, module)
    return call_log
