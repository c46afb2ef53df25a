#!/usr/bin/env python3
"""Measures one second on a carbonmon agent and asks the intensity service about the grid, from Python.

Usage:  python3 measure.py AGENT_ADDR INTENSITY_ADDR [ZONE]
        python3 measure.py 127.0.0.1:50051 127.0.0.1:50061

The Zeus pattern, remote: BeginWindow("python-example"), the work (here: sleep 1 s), EndWindow → time and
joules per GPU, CPU package and DRAM. Then GetCurrentIntensity for a zone (default "DE") → g/kWh and
where the value came from. Run ./generate.sh first (or set CARBONMON_PYTHON_GEN to generated stubs).
Exit status: 0 on success, 1 when a call fails, 2 on bad usage.

TLS and tokens (README, "Security"), as the carbonmon CLI reads them: CARBONMON_CLIENT_TLS_CA_FILE (set:
TLS), CARBONMON_CLIENT_TLS_CERT_FILE + CARBONMON_CLIENT_TLS_KEY_FILE (mutual TLS), CARBONMON_TOKEN_FILE
(sent as "authorization: Bearer <token>").
"""
import os
import sys
import time

def usage_ok(argv: list[str]) -> bool:
    return len(argv) in (3, 4) and argv[1] not in ("-h", "--help")


if __name__ == "__main__" and not usage_ok(sys.argv):
    print(__doc__.strip(), file=sys.stderr)
    sys.exit(2)

sys.path.insert(0, os.environ.get("CARBONMON_PYTHON_GEN") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

try:
    import grpc
    from carbonmon.agent.v1 import agent_pb2, agent_pb2_grpc
    from carbonmon.intensity.v1 import intensity_pb2, intensity_pb2_grpc
except ImportError as exc:  # stubs not generated, or grpcio missing
    sys.exit(f"measure.py: {exc}: run ./generate.sh first (needs grpcio and protobuf: apt-get install python3-grpcio)")

KEY = "python-example"
TIMEOUT_S = 10


def _file(variable: str) -> bytes | None:
    path = os.environ.get(variable)
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def open_channel(addr: str) -> grpc.Channel:
    """TLS when CARBONMON_CLIENT_TLS_CA_FILE is set (mutual with a client certificate), else plaintext."""
    ca = _file("CARBONMON_CLIENT_TLS_CA_FILE")
    if ca is None:
        return grpc.insecure_channel(addr)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca,
        private_key=_file("CARBONMON_CLIENT_TLS_KEY_FILE"),
        certificate_chain=_file("CARBONMON_CLIENT_TLS_CERT_FILE"),
    )
    return grpc.secure_channel(addr, credentials)


def _metadata() -> list[tuple[str, str]]:
    token = _file("CARBONMON_TOKEN_FILE")
    return [("authorization", f"Bearer {token.decode().strip()}")] if token else []


MD = _metadata()


def measure(agent_addr: str) -> None:
    with open_channel(agent_addr) as channel:
        agent = agent_pb2_grpc.EnergyMonitorStub(channel)

        host = agent.GetHost(agent_pb2.GetHostRequest(), timeout=TIMEOUT_S, metadata=MD)
        print(f"agent {agent_addr}: host {host.hostname}, carbonmon {host.agent_version}, {len(host.gpus)} GPU(s), {len(host.rapl_zones)} RAPL zone(s)")
        for gpu in host.gpus:
            print(f"  gpu {gpu.index}: {gpu.name} ({gpu.uuid}), limit {gpu.power_limit_w:.0f} W")
        for backend in host.backends:
            state = agent_pb2.DeviceStatus.Name(backend.status).removeprefix("DEVICE_STATUS_")
            print(f"  backend {backend.name}: {state}" + (f" ({backend.reason})" if backend.reason else ""))

        try:
            agent.BeginWindow(agent_pb2.BeginWindowRequest(key=KEY, labels={"example": "python"}), timeout=TIMEOUT_S, metadata=MD)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
            # Left open by an earlier run that was interrupted: discard it and start again.
            agent.CancelWindow(agent_pb2.CancelWindowRequest(key=KEY), timeout=TIMEOUT_S, metadata=MD)
            agent.BeginWindow(agent_pb2.BeginWindowRequest(key=KEY, labels={"example": "python"}), timeout=TIMEOUT_S, metadata=MD)

        time.sleep(1.0)  # the work being measured

        m = agent.EndWindow(agent_pb2.EndWindowRequest(key=KEY, wait_for_counter_update=True), timeout=TIMEOUT_S, metadata=MD)
        print(f"window {m.key}: time {m.time_s:.3f} s, total {m.total_energy_j:.1f} J")
        for label, energy, uncertainty in (
            ("gpu", m.gpu_energy_j, m.gpu_energy_uncertainty_j),
            ("cpu", m.cpu_energy_j, m.cpu_energy_uncertainty_j),
            ("dram", m.dram_energy_j, m.dram_energy_uncertainty_j),
        ):
            for index in sorted(energy):
                print(f"  {label} {index}: {energy[index]:.1f} J (± {uncertainty.get(index, 0.0):.1f} J)")
        if not m.cpu_energy_j and m.cpu_unavailable_reason:
            print(f"  cpu: not measured ({m.cpu_unavailable_reason})")
        for a in m.approximations:
            print(f"  note: {agent_pb2.ApproximationKind.Name(a.kind)} on {agent_pb2.DeviceDomain.Name(a.domain)} {a.index}")
        print(f"  carbon: {agent_pb2.CarbonStatus.Name(m.carbon_status).removeprefix('CARBON_STATUS_')}"
              + (f", {m.total_carbon_g:.4f} g" if m.carbon_status in (agent_pb2.CARBON_STATUS_FINAL, agent_pb2.CARBON_STATUS_PROVISIONAL) else ""))


def intensity(intensity_addr: str, zone: str) -> None:
    with open_channel(intensity_addr) as channel:
        service = intensity_pb2_grpc.CarbonIntensityStub(channel)
        request = intensity_pb2.IntensityRequest(location=intensity_pb2.Location(zone=zone))
        p = service.GetCurrentIntensity(request, timeout=TIMEOUT_S, metadata=MD)
        source = intensity_pb2.IntensitySource.Name(p.source).removeprefix("INTENSITY_SOURCE_")
        signal = intensity_pb2.SignalType.Name(p.signal).removeprefix("SIGNAL_TYPE_")
        print(f"intensity {p.zone}: {p.g_per_kwh:g} g/kWh from {p.provider} ({source}, {signal}"
              + (", estimated" if p.is_estimated else "") + ")")


def main(argv: list[str]) -> int:
    if not usage_ok(argv):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        measure(argv[1])
        intensity(argv[2], argv[3] if len(argv) == 4 else "DE")
    except grpc.RpcError as err:
        print(f"measure.py: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
