"""``python -m deployer``: the same as the ``triton-gke-deployer`` command."""

from deployer.cli import main

raise SystemExit(main())
