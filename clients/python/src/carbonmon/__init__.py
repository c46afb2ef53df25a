"""carbonmon: energy and carbon of GPU work, measured by a carbonmon agent.

    import carbonmon
    with carbonmon.window("step", sync_execution_with="torch") as w:
        train_step()
    print(w.measurement.gpu_energy, w.measurement.gpu_carbon_emission)

    for sample in carbonmon.watch_power(0.5):
        print(sample.gpu_power)

The agent: CARBONMON_AGENT_ADDR ("host:port"), else 127.0.0.1:50051. Zeus users: carbonmon.zeus.
"""
from ._agent import Agent, Measurement, PowerSample, agent_address
from ._errors import (
    AgentUnavailableError,
    CarbonIntensityError,
    CarbonmonError,
    FrameworkNotAvailableError,
    InvalidRequestError,
    WindowExistsError,
    WindowNotFoundError,
)
from ._intensity import BestWindow, IntensityClient, WindowCandidate
from ._sync import sync_execution
from ._window import Window, default_agent, watch_power, window

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "BestWindow",
    "AgentUnavailableError",
    "CarbonIntensityError",
    "CarbonmonError",
    "FrameworkNotAvailableError",
    "IntensityClient",
    "InvalidRequestError",
    "Measurement",
    "PowerSample",
    "Window",
    "WindowCandidate",
    "WindowExistsError",
    "WindowNotFoundError",
    "agent_address",
    "default_agent",
    "sync_execution",
    "watch_power",
    "window",
]
