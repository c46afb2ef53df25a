"""Waiting for a framework's asynchronous GPU work before a window's edge, as Zeus's sync_execution does.

A CUDA kernel launched before EndWindow may still run when the edge's timestamp is taken: its energy would
land in the next window. Only the client can wait for it. Per GPU index (the framework's numbering):
- torch: torch.cuda.synchronize(i)
- jax:   jax.device_put(0.0, device=jax.devices("gpu")[i]) + 0 for every GPU, plus CPU device 0, then
         jax.block_until_ready on all of them (JAX has no direct synchronize; same workaround as Zeus)
- cupy:  cupy.cuda.Device(i).synchronize()
"""
from __future__ import annotations

import importlib
from typing import Iterable, Optional

from ._errors import FrameworkNotAvailableError

FRAMEWORKS = ("torch", "jax", "cupy")
_INSTALL = {"torch": "pip install torch", "jax": 'pip install "jax[cuda12]"', "cupy": "pip install cupy-cuda12x"}


def _import(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise FrameworkNotAvailableError(
            f"sync_execution_with={name!r}, but {name} cannot be imported ({exc}); install it ({_INSTALL[name]}), "
            f"or pass sync_execution_with one of {', '.join(FRAMEWORKS)} that is installed, or sync_execution=False",
            code="FAILED_PRECONDITION",
        ) from exc


def check_framework(sync_with: Optional[str]) -> None:
    """Fails early (at construction) for an unknown name; the import happens at the first sync."""
    if sync_with is not None and sync_with not in FRAMEWORKS:
        raise ValueError(f"sync_execution_with must be one of {', '.join(FRAMEWORKS)} (or None), got {sync_with!r}")


def sync_execution(gpu_devices: Iterable[int], sync_with: str = "torch") -> None:
    """Blocks until the work already queued on `gpu_devices` by `sync_with` has finished."""
    check_framework(sync_with)
    devices = list(gpu_devices)
    if sync_with == "torch":
        torch = _import("torch")
        for device in devices:
            torch.cuda.synchronize(device)
    elif sync_with == "jax":
        jax = _import("jax")
        futures = [jax.device_put(0.0, device=jax.devices("gpu")[device]) + 0 for device in devices]
        futures.append(jax.device_put(0.0, device=jax.devices("cpu")[0]) + 0)
        jax.block_until_ready(futures)
    else:
        cupy = _import("cupy")
        for device in devices:
            cupy.cuda.Device(device).synchronize()
