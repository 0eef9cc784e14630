"""Write the BERT sample's inputs as perf_analyzer reads them (``--input-data``) to
``chart/files/perf-analyzer-inputs.json``, which the chart's perf_analyzer test Job mounts.

The same tokenized question/context pairs the locustfile sends (``samples.bert.client``, seed 0);
a test holds the file equal to what this writes.

Usage: python -m scripts.perf_analyzer_inputs [--out chart/files/perf-analyzer-inputs.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from samples.bert.client import make_batches, perf_analyzer_input_data
from samples.bert.contract import SEQUENCE_LENGTH

ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULT_OUT: Final = ROOT / "chart" / "files" / "perf-analyzer-inputs.json"
SEQUENCES: Final = 16
"""Distinct sequences perf_analyzer cycles through (a ConfigMap holds them: kept small)."""


def inputs_document() -> str:
    """The file's text: one line per sequence, so a change reads as a diff."""
    batches = make_batches(count=SEQUENCES, batch_size=1, seq_len=SEQUENCE_LENGTH)
    entries = perf_analyzer_input_data(batches)["data"]
    lines = ",\n".join("  " + json.dumps(entry, separators=(",", ":")) for entry in entries)
    return '{"data": [\n' + lines + "\n]}\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(inputs_document())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
