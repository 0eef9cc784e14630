"""Batches through the network, replayed from a CUDA graph per batch bucket on a GPU.

Eager PyTorch issues each of a BERT-large pass's several hundred kernels from Python; below a
batch of about 32 the GPU waits on those launches (about 8 ms a pass on an H100 from batch 1 to
32), while the same pass replayed from a CUDA graph is one launch (1.6 ms at batch 1). A graph
replays fixed shapes at fixed addresses, so :class:`BatchRunner` captures one graph per
*bucket* (:func:`bucket_sizes`) over one static input buffer, copies a batch into it, pads the
rest of its bucket with zero rows (zero ids and an all-zero mask: valid inputs, as in Triton's
warm-up), replays, and copies the batch's rows out into fresh host memory, so nothing a caller
holds is memory a later replay overwrites. Batches above the largest bucket run eagerly: there
the GPU is busy computing, launches cost nothing measurable, and padding would cost real work.

Every bucket is captured when the runner is made (the model's ``initialize``), before Triton
marks the model ready, so no request pays for a capture. A capture that fails leaves the
runner serving every batch eagerly, and it says so once.

The repository writer copies this module next to the python backend's ``model.py`` (as
``bert_cuda_graphs.py``); like the network module, it imports torch and the standard library
only.
"""

from __future__ import annotations

import bisect
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

import torch

DEFAULT_LARGEST_BUCKET = 64
"""The largest batch replayed from a graph unless the model says otherwise. BERT-large fp16 at
sequence 128 is compute-bound from about 64 sequences on an H100 or H200, where a graph saves
nothing and padding to a bucket costs real work."""

BUCKET_STEP = 8
"""Above 8 sequences the buckets are multiples of 8, so a batch is padded by 7 rows at most."""

WARMUP_PASSES = 2
"""Eager passes before each capture, on a side stream, as PyTorch's documentation asks: they
load kernels lazily and create the libraries' handles and workspaces outside the graph."""

LOG_PREFIX = "cuda graphs: "
"""Starts the line the runner logs after capturing, followed by its report as JSON."""

Logits = torch.Tensor
Forward = Callable[..., torch.Tensor]
"""The network: integer inputs ``[batch, sequence]`` in, logits ``[batch, sequence, 2]`` out."""
Replay = Callable[[], object]


class Capture(Protocol):
    """Records ``forward`` once; calling the returned replay reruns it on whatever its inputs
    then hold, writing into the returned output tensor, which it keeps for every replay."""

    def __call__(self, forward: Callable[[], torch.Tensor]) -> tuple[Replay, torch.Tensor]: ...


def bucket_sizes(largest: int) -> tuple[int, ...]:
    """The batch sizes graphs are captured for: 1, 2, 4, 8, then every multiple of
    ``BUCKET_STEP`` below ``largest``, and ``largest`` itself."""
    if largest < 1:
        raise ValueError(f"the largest CUDA graph batch must be at least 1, not {largest}")
    sizes = {largest}
    size = 1
    while size < min(largest, BUCKET_STEP):
        sizes.add(size)
        size *= 2
    sizes.update(range(BUCKET_STEP, largest, BUCKET_STEP))
    return tuple(sorted(sizes))


def bucket_for(rows: int, buckets: Sequence[int]) -> int | None:
    """The smallest of the sorted ``buckets`` that holds ``rows``, or None above them all."""
    index = bisect.bisect_left(buckets, rows)
    return buckets[index] if index < len(buckets) else None


class CudaGraphCapture:
    """:class:`Capture` with ``torch.cuda.CUDAGraph``. Every graph draws on one memory pool:
    replays run one at a time on one stream, and each output is copied out before the next
    replay, so the graphs may reuse each other's working memory (captured largest first, the
    first graph sizes the pool)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._pool = torch.cuda.graph_pool_handle()
        self._graphs: list[torch.cuda.CUDAGraph] = []  # a replay needs its graph alive

    def __call__(self, forward: Callable[[], torch.Tensor]) -> tuple[Replay, torch.Tensor]:
        side = torch.cuda.Stream(self.device)  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_PASSES):
                forward()
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        current = torch.cuda.current_stream(self.device)
        try:
            with torch.cuda.graph(graph, pool=self._pool):
                output = forward()
        finally:
            # A capture that fails inside the block leaves its capture stream current.
            torch.cuda.set_stream(current)
        self._graphs.append(graph)
        return graph.replay, output


@dataclass
class CaptureReport:
    """What capturing cost: time per bucket and GPU memory."""

    buckets: list[int] = field(default_factory=list)
    """The buckets captured (empty when graphs are off or their capture failed)."""
    seconds: dict[int, float] = field(default_factory=dict)
    """Seconds per bucket, its warm-up passes included."""
    total_s: float = 0.0
    """Seconds for every bucket, from the first warm-up to the last capture."""
    pool_mib: float | None = None
    """Growth of PyTorch's reserved GPU memory over the captures: the graphs' memory pool and
    their outputs (None off a GPU)."""
    device_mib: float | None = None
    """GPU memory no longer free after the captures, as the driver counts it: the pool plus the
    graphs themselves (None off a GPU)."""
    failure: str = ""
    """Why capturing stopped, where it failed; the runner then serves eagerly."""

    def line(self) -> str:
        """The report as one JSON line, after ``LOG_PREFIX``."""
        document = asdict(self)
        document["seconds"] = {str(k): round(v, 3) for k, v in self.seconds.items()}
        document["total_s"] = round(self.total_s, 3)
        return LOG_PREFIX + json.dumps(document, separators=(",", ":"))


def _memory_mib(device: torch.device) -> tuple[float, float] | None:
    """PyTorch's reserved memory and the memory in use on ``device`` in MiB; None off a GPU.
    Cached blocks that no tensor holds are given back first, as every capture does when it
    starts: memory that earlier work left cached would otherwise leave the figures, and make
    the graphs' memory look smaller than it is (negative after a larger batch)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info(device)
    return torch.cuda.memory_reserved(device) / 2**20, (total - free) / 2**20


class BatchRunner:
    """Runs the requests of one ``execute()`` as one batch through ``forward`` on ``device``
    and returns their FP32 logits in fresh host memory, rows in request order: a graph replay
    for batches up to the largest captured bucket, an eager pass above it (and for every batch
    where capturing failed or no bucket was asked for)."""

    def __init__(
        self,
        forward: Forward,
        *,
        device: torch.device,
        inputs: int,
        sequence_length: int,
        buckets: Sequence[int] = (),
        capture: Capture | None = None,
        log: Callable[[str], None] = print,
        warn: Callable[[str], None] = print,
    ) -> None:
        """Capture every bucket of ``buckets`` with ``capture`` (CUDA graphs by default) now.
        ``log`` gets the capture report, ``warn`` the one line saying why graphs are off where a
        capture fails."""
        self._forward = forward
        self.device = device
        self.buckets: tuple[int, ...] = ()
        self.report = CaptureReport()
        self.replays = 0
        """Batches served by a graph replay."""
        self.eager_passes = 0
        """Batches served eagerly."""
        self._replays: dict[int, Replay] = {}
        self._outputs: dict[int, torch.Tensor] = {}
        self._filled = 0  # rows of the static buffer holding an earlier batch's inputs
        if not buckets:
            return
        largest = max(buckets)
        with torch.inference_mode():
            self._static = torch.zeros(
                (inputs, largest, sequence_length), dtype=torch.int32, device=device
            )
            self._staging = torch.zeros(
                (inputs, largest, sequence_length),
                dtype=torch.int32,
                pin_memory=device.type == "cuda",  # copies to the GPU without a bounce buffer
            )
        self._capture_all(sorted(set(buckets)), capture or CudaGraphCapture(device), log, warn)

    def _capture_all(
        self,
        buckets: list[int],
        capture: Capture,
        log: Callable[[str], None],
        warn: Callable[[str], None],
    ) -> None:
        report = self.report
        # One eager pass first, so the libraries' first-use allocations (cuBLAS workspaces,
        # lazily loaded kernels) are not counted as the graphs' memory.
        with torch.inference_mode():
            self._forward(*self._static).float()
        before = _memory_mib(self.device)
        started = time.perf_counter()
        bucket = buckets[-1]
        try:
            for bucket in reversed(buckets):  # largest first: it sizes the shared pool
                began = time.perf_counter()
                with torch.inference_mode():
                    replay, output = capture(self._pass_over(bucket))
                self._replays[bucket], self._outputs[bucket] = replay, output
                report.seconds[bucket] = time.perf_counter() - began
        except Exception as exc:  # any failure to capture leaves the model serving eagerly
            self._replays.clear()
            self._outputs.clear()
            report.seconds.clear()
            report.failure = f"at batch {bucket}: {type(exc).__name__}: {exc}".splitlines()[0]
            self._settle()
            warn(f"CUDA graphs are off, every batch runs eagerly: capture failed {report.failure}")
            return
        report.total_s = time.perf_counter() - started
        self.buckets = tuple(buckets)
        report.buckets = list(buckets)
        after = _memory_mib(self.device)
        if before is not None and after is not None:
            report.pool_mib = after[0] - before[0]
            report.device_mib = after[1] - before[1]
        log(report.line())

    def _pass_over(self, bucket: int) -> Callable[[], torch.Tensor]:
        """The pass a graph of ``bucket`` records: the network over the first ``bucket`` rows
        of the static inputs, FP32 logits out."""
        views = [column[:bucket] for column in self._static]

        def forward() -> torch.Tensor:
            return self._forward(*views).float()

        return forward

    def _settle(self) -> None:
        """After a failed capture: give the partial graphs' memory back and check the GPU
        still runs work, or fail (a model that cannot run anything must not load)."""
        if self.device.type != "cuda":
            return
        try:
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
        except RuntimeError as exc:
            raise RuntimeError(
                f"the GPU failed after a CUDA graph capture failed ({self.report.failure}); "
                "set the model parameter cuda_graphs to false"
            ) from exc

    def __call__(self, columns: Sequence[Sequence[torch.Tensor]]) -> Logits:
        """The logits of the batch whose input ``columns`` (one list of ``[rows, sequence]``
        tensors per network input, one tensor per request, in request order) hold, as FP32
        ``[batch, sequence, 2]`` in host memory that no later call touches."""
        rows = sum(int(tensor.shape[0]) for tensor in columns[0])
        bucket = bucket_for(rows, self.buckets)
        with torch.inference_mode():
            if bucket is None:
                self.eager_passes += 1
                return self._eager(columns)
            for static, staging, column in zip(self._static, self._staging, columns, strict=True):
                torch.cat(list(column), out=staging[:rows])
                static[:rows].copy_(staging[:rows], non_blocking=True)
            if self._filled > rows:  # an earlier, larger batch's rows: back to padding
                self._static[:, rows : self._filled].zero_()
            self._filled = rows
            self._replays[bucket]()
            self.replays += 1
            # Copied out before anything else replays: the graphs share one memory pool.
            return self._outputs[bucket][:rows].to("cpu", copy=True)

    def _eager(self, columns: Sequence[Sequence[torch.Tensor]]) -> Logits:
        batch = [torch.cat(list(column)) if len(column) > 1 else column[0] for column in columns]
        on_device = [tensor.to(self.device, non_blocking=True) for tensor in batch]
        return self._forward(*on_device).float().cpu()
