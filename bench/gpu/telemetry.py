"""What the GPU did while a benchmark phase ran: SM clock, power, busy time, why clocks dropped.

Past its power limit a GPU lowers its clocks, and a GPU time-sliced between CUDA contexts
reports itself busy while doing less work. Recording clock, power and busy share next to every
figure tells a serving overhead apart from a slower card.

Samples come from NVML (``pynvml``, the ``nvidia-ml-py`` package that CUDA images carry) in a
background thread. Where NVML is missing (no GPU, or a CPU smoke run) the sampler records
nothing and says why; it never fails the benchmark.
"""

from __future__ import annotations

import importlib
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# NVML's clock event reasons (nvmlClocksEventReason*), the bits that explain a lower clock.
CLOCK_EVENT_REASONS: dict[int, str] = {
    0x1: "idle",
    0x2: "application clocks",
    0x4: "software power cap",
    0x8: "hardware slowdown",
    0x10: "sync boost",
    0x20: "software thermal",
    0x40: "hardware thermal",
    0x80: "power brake",
    0x100: "display clock",
}


@dataclass(frozen=True)
class GpuSample:
    """One reading of the GPU."""

    at: float
    """Wall-clock time of the reading (``time.time()``)."""
    sm_clock_mhz: float
    power_w: float
    utilization_pct: float
    """Share of the last sample period during which a kernel ran (NVML's ``gpu`` rate)."""
    temperature_c: float
    reasons: int
    """Bit mask of :data:`CLOCK_EVENT_REASONS` active at the reading."""


@dataclass(frozen=True)
class GpuSummary:
    """Medians over one phase's readings."""

    samples: int
    sm_clock_mhz: float
    power_w: float
    power_limit_w: float
    utilization_pct: float
    temperature_c: float
    """The highest temperature read."""
    reasons: list[str]
    """Clock event reasons active in at least a tenth of the readings."""

    def brief(self) -> str:
        why = ", ".join(self.reasons) or "none"
        return (
            f"SM {self.sm_clock_mhz:.0f} MHz, {self.power_w:.0f}/{self.power_limit_w:.0f} W, "
            f"busy {self.utilization_pct:.0f} %, max {self.temperature_c:.0f} °C, "
            f"clock reasons: {why}"
        )


def summarize(samples: list[GpuSample], *, power_limit_w: float) -> GpuSummary | None:
    """The medians of ``samples``; ``None`` when there are none."""
    if not samples:
        return None
    counts: dict[str, int] = {}
    for sample in samples:
        for bit, name in CLOCK_EVENT_REASONS.items():
            if sample.reasons & bit:
                counts[name] = counts.get(name, 0) + 1
    return GpuSummary(
        samples=len(samples),
        sm_clock_mhz=statistics.median(s.sm_clock_mhz for s in samples),
        power_w=statistics.median(s.power_w for s in samples),
        power_limit_w=power_limit_w,
        utilization_pct=statistics.median(s.utilization_pct for s in samples),
        temperature_c=max(s.temperature_c for s in samples),
        reasons=sorted(name for name, n in counts.items() if n * 10 >= len(samples)),
    )


@dataclass
class PhaseRecord:
    """Filled in when a :meth:`GpuSampler.phase` block ends."""

    summary: GpuSummary | None = None
    """The phase's medians; ``None`` without NVML or when the phase was too short to sample."""


@dataclass
class GpuSampler:
    """Reads GPU ``index`` every ``interval_s`` while a :meth:`phase` is open."""

    index: int = 0
    interval_s: float = 0.2
    unavailable: str = ""
    """Why nothing is recorded, or empty when NVML answers."""
    _nvml: Any = field(default=None, repr=False)
    _handle: Any = field(default=None, repr=False)
    _reasons_of: Any = field(default=None, repr=False)
    _power_limit_w: float = 0.0

    def __post_init__(self) -> None:
        try:
            nvml = importlib.import_module("pynvml")
            nvml.nvmlInit()
            self._handle = nvml.nvmlDeviceGetHandleByIndex(self.index)
            self._power_limit_w = nvml.nvmlDeviceGetEnforcedPowerLimit(self._handle) / 1000
            # Newer NVML names the call "event reasons"; older ones only "throttle reasons".
            self._reasons_of = getattr(
                nvml,
                "nvmlDeviceGetCurrentClocksEventReasons",
                getattr(nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None),
            )
            self._nvml = nvml
        except Exception as exc:  # any NVML failure only means no telemetry
            self.unavailable = f"no GPU telemetry ({type(exc).__name__}: {exc})"

    def read(self) -> GpuSample:
        nvml, handle, reasons_of = self._nvml, self._handle, self._reasons_of
        return GpuSample(
            at=time.time(),
            sm_clock_mhz=float(nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM)),
            power_w=nvml.nvmlDeviceGetPowerUsage(handle) / 1000,
            utilization_pct=float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu),
            temperature_c=float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)),
            reasons=int(reasons_of(handle)) if reasons_of else 0,
        )

    @contextmanager
    def phase(self, window: tuple[float, float] | None = None) -> Iterator[PhaseRecord]:
        """Sample while the block runs; the yielded record holds the summary afterwards, of the
        readings within ``window`` (wall-clock start and stop) where one is given."""
        record = PhaseRecord()
        if self._nvml is None:
            yield record
            return
        samples: list[GpuSample] = []
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(self.interval_s):
                samples.append(self.read())

        thread = threading.Thread(target=loop, name="gpu-sampler", daemon=True)
        thread.start()
        try:
            yield record
        finally:
            stop.set()
            thread.join()
            if window is not None:
                samples = [s for s in samples if window[0] <= s.at <= window[1]]
            record.summary = summarize(samples, power_limit_w=self._power_limit_w)
