"""The agent's client: windows, power, host. Plain Python results (dicts keyed by int, like Zeus)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Dict, Iterator, List, Mapping, Optional, Sequence

import grpc
from google.protobuf import duration_pb2

from ._errors import from_rpc_error
from .agent.v1 import agent_pb2, agent_pb2_grpc
from ._channel import open_channel

DEFAULT_AGENT = "127.0.0.1:50051"
_PRICED = (agent_pb2.CARBON_STATUS_FINAL, agent_pb2.CARBON_STATUS_PROVISIONAL)


def agent_address(address: Optional[str] = None) -> str:
    """`address`, else CARBONMON_AGENT_ADDR, else 127.0.0.1:50051."""
    return address or os.environ.get("CARBONMON_AGENT_ADDR") or DEFAULT_AGENT


def _time(ts) -> Optional[datetime]:
    return ts.ToDatetime().replace(tzinfo=timezone.utc) if ts.ByteSize() else None


@dataclass
class Measurement:
    """A window's result. Energies in joules and grams of CO2eq per device index (GPU indices in this
    process's CUDA_VISIBLE_DEVICES numbering); CPU and DRAM None when not measured; the carbon maps None
    unless the grams are FINAL or PROVISIONAL (see carbon_status and carbon_status_reason)."""

    key: str
    time: float
    gpu_energy: Dict[int, float]
    cpu_energy: Optional[Dict[int, float]]
    dram_energy: Optional[Dict[int, float]]
    gpu_carbon_emission: Optional[Dict[int, float]]
    cpu_carbon_emission: Optional[Dict[int, float]]
    dram_carbon_emission: Optional[Dict[int, float]]
    total_energy: float
    total_carbon_emission: Optional[float]
    energy_uncertainty: Dict[str, Dict[int, float]]
    carbon_status: str
    carbon_status_reason: str
    begin_time: Optional[datetime]
    end_time: Optional[datetime]
    ended: bool
    labels: Dict[str, str]
    #: The agent's Measurement message (approximations, missing devices, carbon periods, ...).
    raw: agent_pb2.Measurement = field(repr=False)

    @classmethod
    def from_proto(cls, m: agent_pb2.Measurement) -> "Measurement":
        priced = m.carbon_status in _PRICED
        d = lambda mp: {int(k): float(v) for k, v in mp.items()}  # noqa: E731
        cpu, dram = bool(m.cpu_energy_j), bool(m.dram_energy_j)
        return cls(
            key=m.key,
            time=m.time_s,
            gpu_energy=d(m.gpu_energy_j),
            cpu_energy=d(m.cpu_energy_j) if cpu else None,
            dram_energy=d(m.dram_energy_j) if dram else None,
            gpu_carbon_emission=d(m.gpu_carbon_g) if priced else None,
            cpu_carbon_emission=d(m.cpu_carbon_g) if priced and cpu else None,
            dram_carbon_emission=d(m.dram_carbon_g) if priced and dram else None,
            total_energy=m.total_energy_j,
            total_carbon_emission=m.total_carbon_g if priced else None,
            energy_uncertainty={"gpu": d(m.gpu_energy_uncertainty_j), "cpu": d(m.cpu_energy_uncertainty_j), "dram": d(m.dram_energy_uncertainty_j)},
            carbon_status=agent_pb2.CarbonStatus.Name(m.carbon_status).replace("CARBON_STATUS_", ""),
            carbon_status_reason=m.carbon_status_reason,
            begin_time=_time(m.begin_time),
            end_time=_time(m.end_time),
            ended=m.ended,
            labels=dict(m.labels),
            raw=m,
        )


@dataclass
class PowerSample:
    """One WatchPower sample: watts now and joules since the stream began, per device index."""

    time: Optional[datetime]
    sequence: int
    gpu_power: Dict[int, float]
    cpu_power: Dict[int, float]
    dram_power: Dict[int, float]
    gpu_energy: Dict[int, float]
    cpu_energy: Dict[int, float]
    dram_energy: Dict[int, float]
    skipped: int
    simulated: bool

    @classmethod
    def from_proto(cls, s: agent_pb2.PowerSample) -> "PowerSample":
        d = lambda mp: {int(k): float(v) for k, v in mp.items()}  # noqa: E731
        return cls(_time(s.time), s.sequence, d(s.gpu_power_w), d(s.cpu_power_w), d(s.dram_power_w),
                   d(s.gpu_energy_j), d(s.cpu_energy_j), d(s.dram_energy_j), s.skipped, s.simulated)


class Agent:
    """A connection to one carbonmon agent (`address` "host:port"; default CARBONMON_AGENT_ADDR, else
    127.0.0.1:50051). GPU indices mean what this process's framework means: the client sends its
    CUDA_VISIBLE_DEVICES with every request (`cuda_visible_devices=None`: send none, the agent's applies)."""

    def __init__(self, address: Optional[str] = None, *, timeout: float = 10.0,
                 cuda_visible_devices: Optional[str] = os.environ.get("CUDA_VISIBLE_DEVICES"),
                 channel: Optional[grpc.Channel] = None, tls_ca: Optional[str] = None, tls_cert: Optional[str] = None,
                 tls_key: Optional[str] = None, token_file: Optional[str] = None) -> None:
        """TLS and the token: the arguments, else CARBONMON_CLIENT_TLS_*_FILE and CARBONMON_TOKEN_FILE."""
        self.address = agent_address(address)
        self.timeout = timeout
        self.cuda_visible_devices = cuda_visible_devices
        self._channel = channel or open_channel(self.address, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key, token_file=token_file)
        self._stub = agent_pb2_grpc.EnergyMonitorStub(self._channel)

    def _call(self, method: str, request):
        try:
            return getattr(self._stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err, "agent", self.address) from None

    def _cvd(self) -> dict:
        return {} if self.cuda_visible_devices is None else {"cuda_visible_devices": self.cuda_visible_devices}

    def host(self) -> agent_pb2.GetHostResponse:
        return self._call("GetHost", agent_pb2.GetHostRequest())

    def gpu_count(self) -> int:
        """GPUs this process sees: its CUDA_VISIBLE_DEVICES entries when set, else the agent's GPUs."""
        if self.cuda_visible_devices is not None:
            return len([e for e in self.cuda_visible_devices.split(",") if e.strip()])
        return len(self.host().gpus)

    def begin_window(self, key: str, *, gpu_indices: Optional[Sequence[int]] = None, cpu_indices: Optional[Sequence[int]] = None,
                     labels: Optional[Mapping[str, str]] = None, skip_gpus: bool = False, skip_cpus: bool = False) -> agent_pb2.BeginWindowResponse:
        request = agent_pb2.BeginWindowRequest(key=key, gpu_indices=list(gpu_indices or []), cpu_indices=list(cpu_indices or []),
                                               labels=dict(labels or {}), skip_gpus=skip_gpus, skip_cpus=skip_cpus, **self._cvd())
        return self._call("BeginWindow", request)

    def end_window(self, key: str, *, wait_for_counter_update: bool = True) -> Measurement:
        """Ends the window (idempotent: a repeat returns the stored result)."""
        return Measurement.from_proto(self._call("EndWindow", agent_pb2.EndWindowRequest(key=key, wait_for_counter_update=wait_for_counter_update)))

    def get_window(self, key: str) -> Measurement:
        return Measurement.from_proto(self._call("GetWindow", agent_pb2.GetWindowRequest(key=key)))

    def cancel_window(self, key: str) -> None:
        self._call("CancelWindow", agent_pb2.CancelWindowRequest(key=key))

    def list_windows(self, *, include_ended: bool = False) -> List[agent_pb2.WindowInfo]:
        return list(self._call("ListWindows", agent_pb2.ListWindowsRequest(include_ended=include_ended)).windows)

    def watch_power(self, period: float = 1.0, *, gpu_indices: Optional[Sequence[int]] = None,
                    cpu_indices: Optional[Sequence[int]] = None) -> Iterator[PowerSample]:
        """Power samples every `period` seconds until the loop stops; leaving the loop cancels the stream."""
        request = agent_pb2.WatchPowerRequest(gpu_indices=list(gpu_indices or []), cpu_indices=list(cpu_indices or []),
                                              period=duration_pb2.Duration(seconds=int(period), nanos=int(round((period % 1) * 1e9))),
                                              **self._cvd())
        stream = self._stub.WatchPower(request)
        try:
            for sample in stream:
                yield PowerSample.from_proto(sample)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.CANCELLED:
                raise from_rpc_error(err, "agent", self.address) from None
        finally:
            stream.cancel()

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Agent":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
