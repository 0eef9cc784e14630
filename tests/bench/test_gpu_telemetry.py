"""GPU telemetry for the GPU benchmark, here where no GPU exists.

Cases: without NVML the sampler says why and records nothing (the benchmark goes on); the
summary of readings takes medians, the highest temperature, and names only the clock event
reasons present in at least a tenth of the readings; a phase samples through an NVML module
(a stand-in with NVML's functions, since no driver runs here) and summarizes on exit, only the
readings inside its window where it has one.
"""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace

import pytest

from bench.gpu import telemetry
from bench.gpu.telemetry import GpuSample, GpuSampler, summarize


def _sample(clock: float, reasons: int = 0, temperature: float = 50.0) -> GpuSample:
    return GpuSample(
        at=0.0,
        sm_clock_mhz=clock,
        power_w=600.0,
        utilization_pct=100.0,
        temperature_c=temperature,
        reasons=reasons,
    )


def test_without_nvml_nothing_is_recorded_and_the_reason_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails as if not installed
    sampler = GpuSampler()
    assert "no GPU telemetry" in sampler.unavailable
    with sampler.phase() as phase:
        pass
    assert phase.summary is None


def test_summary_takes_medians_and_frequent_reasons() -> None:
    power_cap, thermal = 0x4, 0x20
    samples = (
        [_sample(1980.0)] * 10
        + [_sample(1500.0, power_cap)] * 11
        + [_sample(1400.0, thermal, temperature=80.0)]
    )
    summary = summarize(samples, power_limit_w=700.0)
    assert summary is not None
    assert summary.samples == 22
    assert summary.sm_clock_mhz == 1500.0
    assert summary.temperature_c == 80.0
    assert summary.reasons == ["software power cap"]  # thermal: 1 of 22, under a tenth
    assert "1500 MHz, 600/700 W" in summary.brief()
    assert summarize([], power_limit_w=700.0) is None


def _fake_nvml() -> SimpleNamespace:
    return SimpleNamespace(
        NVML_CLOCK_SM=1,
        NVML_TEMPERATURE_GPU=0,
        nvmlInit=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda index: f"gpu{index}",
        nvmlDeviceGetEnforcedPowerLimit=lambda handle: 700_000,
        nvmlDeviceGetClockInfo=lambda handle, clock: 1755,
        nvmlDeviceGetPowerUsage=lambda handle: 650_000,
        nvmlDeviceGetUtilizationRates=lambda handle: SimpleNamespace(gpu=97),
        nvmlDeviceGetTemperature=lambda handle, sensor: 61,
        nvmlDeviceGetCurrentClocksEventReasons=lambda handle: 0x4,
    )


class _Stamps:
    """The sampler's clock: each reading is stamped 10 ms after the last, however late a busy
    machine runs the sampler's thread, so a test waits for readings, not for time."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.taken = 0

    def time(self) -> float:
        self.taken += 1
        return self.start + self.taken / 100


def test_a_phase_samples_through_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml())
    stamps = _Stamps(time.time())
    monkeypatch.setattr(telemetry, "time", stamps)
    sampler = GpuSampler(interval_s=0.01)
    assert sampler.unavailable == ""
    with sampler.phase() as phase:
        while stamps.taken < 3:
            time.sleep(0.01)
    assert phase.summary is not None
    assert phase.summary.samples >= 3
    assert phase.summary.sm_clock_mhz == 1755.0
    assert phase.summary.power_w == 650.0
    assert phase.summary.power_limit_w == 700.0
    assert phase.summary.reasons == ["software power cap"]


def test_a_window_keeps_only_the_readings_inside_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml())
    started = time.time()
    stamps = _Stamps(started)
    monkeypatch.setattr(telemetry, "time", stamps)
    sampler = GpuSampler(interval_s=0.001)
    with sampler.phase(window=(started + 0.095, started + 0.205)) as inside:
        while stamps.taken < 30:
            time.sleep(0.005)
    assert inside.summary is not None
    assert inside.summary.samples == 11  # stamped 0.10 to 0.20 s, of 30 or more
    with sampler.phase(window=(started - 10, started - 5)) as before_it:
        time.sleep(0.05)
    assert before_it.summary is None
