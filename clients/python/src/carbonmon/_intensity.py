"""The intensity service's client (the few calls the Zeus drop-in and scripts need)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Dict, List, Optional, Sequence, Tuple, Union

import grpc

from ._channel import open_channel
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


@dataclass(frozen=True)
class WindowCandidate:
    """A time and place to run a job (GetBestWindow): the exact time-weighted mean intensity over it."""

    zone: str
    start: datetime
    end: datetime
    mean_g_per_kwh: float
    #: Grams for the job's energy (even power assumed); None unless energy was given.
    carbon_g: Optional[float]
    provider: str
    #: False for a flat series from a provider without forecasts (waiting changes nothing there).
    is_forecast: bool


@dataclass(frozen=True)
class BestWindow:
    #: Ranked by mean intensity, best first.
    candidates: List[WindowCandidate]
    #: The same figures for starting now, one per location: the saving is the difference.
    run_now: List[WindowCandidate]
    notes: List[str]


def _utc(ts) -> datetime:
    return ts.ToDatetime().replace(tzinfo=timezone.utc)


def _candidate(c) -> WindowCandidate:
    return WindowCandidate(
        zone=c.zone,
        start=_utc(c.start),
        end=_utc(c.end),
        mean_g_per_kwh=c.mean_g_per_kwh,
        carbon_g=c.carbon_g if c.HasField("carbon_g") else None,
        provider=c.provider,
        is_forecast=c.is_forecast,
    )


class IntensityClient:
    def __init__(self, address: Optional[str] = None, *, timeout: float = 10.0, tls_ca: Optional[str] = None,
                 tls_cert: Optional[str] = None, tls_key: Optional[str] = None, token_file: Optional[str] = None) -> None:
        """TLS and the token: the arguments, else CARBONMON_CLIENT_TLS_*_FILE and CARBONMON_TOKEN_FILE."""
        self.address = intensity_address(address)
        self.timeout = timeout
        self._channel = open_channel(self.address, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key, token_file=token_file)
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

    def best_window(
        self,
        locations: Sequence[Location],
        duration: timedelta,
        *,
        within: Optional[timedelta] = None,
        energy_kwh: Optional[float] = None,
        max_candidates: int = 5,
        emission_factor: str = "lifecycle",
    ) -> BestWindow:
        """The best time and place to run a job of `duration` among `locations`, from now until `within`
        from now (default: the shortest forecast horizon), ranked by the exact mean intensity."""
        factor = {"lifecycle": intensity_pb2.EMISSION_FACTOR_TYPE_LIFECYCLE, "direct": intensity_pb2.EMISSION_FACTOR_TYPE_DIRECT}[emission_factor]
        request = intensity_pb2.BestWindowRequest(
            locations=[location_message(loc) for loc in locations], emission_factor=factor, max_candidates=max_candidates
        )
        request.duration.FromTimedelta(duration)
        if within is not None:
            request.latest_end.FromDatetime(datetime.now(timezone.utc).replace(tzinfo=None) + within)
        if energy_kwh is not None:
            request.energy_j = energy_kwh * 3.6e6
        response = self._call("GetBestWindow", request)
        return BestWindow(
            candidates=[_candidate(c) for c in response.candidates],
            run_now=[_candidate(c) for c in response.run_now],
            notes=list(response.notes),
        )

    def close(self) -> None:
        self._channel.close()
