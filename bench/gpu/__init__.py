"""Serving efficiency on a GPU: BERT through the local Triton server against the raw network.

One run, one machine, one GPU (``make bench-gpu``, ``python -m bench.gpu``):

1. writes the ``python``-variant repository (``large``, fp16, GPU instances) with the sample's
   own writer, so the benchmark serves exactly what users deploy;
2. times the raw network in-process at each batch size two ways (``raw``): a burst (CUDA
   events, median of a few passes) and sustained (back to back for as long as a served point
   lasts, inputs copied in and logits copied out each pass, as any server must);
3. starts ``tritonserver`` with the chart's command and arguments (``chart_args``,
   ``demo.local.LocalTriton``; behind MPS through the chart's own launcher, ``mps``) once per
   server configuration and sweeps client concurrency (``point``) with several client
   processes, each an asyncio loop speaking the v2 binary tensor protocol of
   ``samples/bert/client.py`` (``client``), every response checked; Triton's own statistics
   (``triton_stats``) give the batch sizes it formed and how busy the model was; the GPU's
   clocks and power ride along (``telemetry``);
4. prints a Markdown table and writes it with the raw figures to ``--out`` (``report``).

The figure of merit is served sequences per second over the raw network's best sustained
sequences per second: both ran for the same time, at the clocks a sustained load gets.
``sweep`` runs the steps in order, ``cli`` parses the command line. Every phase is bounded in
time; only loopback receives traffic.
"""
