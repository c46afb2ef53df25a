"""The Pythonic core: `with carbonmon.window("step"): ...` and `for s in carbonmon.watch_power(): ...`."""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator, Mapping, Optional, Sequence, Union

from ._agent import Agent, Measurement, PowerSample
from ._sync import check_framework, sync_execution

_default: Optional[Agent] = None
_lock = threading.Lock()


def default_agent() -> Agent:
    """One shared Agent for CARBONMON_AGENT_ADDR (else 127.0.0.1:50051), made at first use."""
    global _default
    with _lock:
        if _default is None:
            _default = Agent()
        return _default


def _agent(agent: Union[Agent, str, None]) -> Agent:
    if isinstance(agent, Agent):
        return agent
    return Agent(agent) if agent else default_agent()


class Window:
    """What `window()` yields: the key while the block runs, the measurement after it."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.measurement: Optional[Measurement] = None


@contextlib.contextmanager
def window(key: str, *, agent: Union[Agent, str, None] = None, gpu_indices: Optional[Sequence[int]] = None,
           cpu_indices: Optional[Sequence[int]] = None, labels: Optional[Mapping[str, str]] = None,
           sync_execution_with: Optional[str] = None) -> Iterator[Window]:
    """Measures the block in window `key`; `.measurement` holds the result afterwards (also when the block
    raised: the energy was spent). With sync_execution_with ("torch", "jax", "cupy") the framework's queued
    GPU work is waited for before each edge, on `gpu_indices` (default: every GPU this process sees)."""
    check_framework(sync_execution_with)
    a = _agent(agent)
    sync_gpus = list(gpu_indices) if gpu_indices is not None else (list(range(a.gpu_count())) if sync_execution_with else [])
    if sync_execution_with:
        sync_execution(sync_gpus, sync_execution_with)
    a.begin_window(key, gpu_indices=gpu_indices, cpu_indices=cpu_indices, labels=labels)
    handle = Window(key)
    try:
        yield handle
    finally:
        if sync_execution_with:
            sync_execution(sync_gpus, sync_execution_with)
        handle.measurement = a.end_window(key)


def watch_power(period: float = 1.0, *, agent: Union[Agent, str, None] = None, gpu_indices: Optional[Sequence[int]] = None,
                cpu_indices: Optional[Sequence[int]] = None) -> Iterator[PowerSample]:
    """Power per device every `period` seconds, as an iterator; `break` cancels the stream."""
    return _agent(agent).watch_power(period, gpu_indices=gpu_indices, cpu_indices=cpu_indices)
