"""Small helpers the demo, the load test, the benchmarks, the stand-ins and the tests share:
percentiles, bounded waits, ports on loopback, and subprocesses that cannot outlive their time.

The bottom layer: it imports nothing of the project. The deployer does not use it (its image
ships only ``deployer/``), and keeps its own readiness loop.
"""
