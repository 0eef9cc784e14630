"""A Kubernetes API emulator for the faults no real API server shows on demand: the server
(``apiserver``), the per-kind controllers a test installs (``controllers``), and the emulator
on a loopback port of its own (``cluster``)."""
