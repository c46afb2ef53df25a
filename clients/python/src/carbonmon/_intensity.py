"""The intensity service's client (the few calls the Zeus drop-in and scripts need)."""
from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Dict, Optional, Tuple, Union

import grpc

from ._errors import CarbonIntensityError, from_rpc_error
from .intensity.v1 import intensity_pb2, intensity_pb2_grpc

DEFAULT_INTENSITY = "127.0.0.1:50061"
Location = Union[str, Tuple[float, float], None]


def intensity_address(address: Optional[str] = None) -> str:
    """`address`, else CARBONMON_INTENSITY_ADDR, else 127.0.0.1:50061."""
    return address or os.environ.get("CARBONMON_INTENSITY_ADDR") or DEFAULT_INTENSITY


def location_message(location: Location) -> intensity_pb2.Location:
    """A zone ("DE"), (lat, lon), or None / "auto" (the service's host location)."""
    if location is None or location == "auto":
        return intensity_pb2.Location(auto_detect=True)
    if isinstance(location, str):
        return intensity_pb2.Location(zone=location)
    lat, lon = location
    return intensity_pb2.Location(coordinates=intensity_pb2.Coordinates(lat=float(lat), lon=float(lon)))


class IntensityClient:
    def __init__(self, address: Optional[str] = None, *, timeout: float = 10.0) -> None:
        self.address = intensity_address(address)
        self.timeout = timeout
        self._channel = grpc.insecure_channel(self.address)
        self._stub = intensity_pb2_grpc.CarbonIntensityStub(self._channel)

    def _call(self, method: str, request):
        try:
            return getattr(self._stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err, "intensity service", self.address, default=CarbonIntensityError) from None

    @staticmethod
    def _request(location: Location, emission_factor: str, allow_estimated: Optional[bool]) -> intensity_pb2.IntensityRequest:
        factor = {"lifecycle": intensity_pb2.EMISSION_FACTOR_TYPE_LIFECYCLE, "direct": intensity_pb2.EMISSION_FACTOR_TYPE_DIRECT}[emission_factor]
        extra = {} if allow_estimated is None else {"allow_estimated": allow_estimated}
        return intensity_pb2.IntensityRequest(location=location_message(location), emission_factor=factor, **extra)

    def current(self, location: Location, emission_factor: str = "lifecycle", allow_estimated: Optional[bool] = None) -> intensity_pb2.IntensityPoint:
        return self._call("GetCurrentIntensity", self._request(location, emission_factor, allow_estimated))

    def recent(self, location: Location, emission_factor: str = "lifecycle", allow_estimated: Optional[bool] = None) -> Dict[datetime, float]:
        """The last 24 h: period start (UTC) → g/kWh."""
        series = self._call("GetRecentIntensity", self._request(location, emission_factor, allow_estimated))
        return {p.valid_from.ToDatetime().replace(tzinfo=timezone.utc): p.g_per_kwh for p in series.points}

    def close(self) -> None:
        self._channel.close()
