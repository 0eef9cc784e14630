"""``python -m bench.gpu``: what ``make bench-gpu`` runs."""

from bench.gpu.cli import main

raise SystemExit(main())
