"""The load test's modules, which ``locust/locustfile-bert-large.py`` imports: its options and
load shapes, the requests and their checks, the HTTP and gRPC users' clients, the end-of-run
summary. A package of its own name, so it never stands in for the ``locust`` library, and so
``lint-imports`` holds its imports (the sample's client and ``common``; nothing of the demo,
the benchmarks, the stand-ins or the tests).

In the load-test chart these files arrive without ``__init__.py`` (Helm bundles only what the
locustfile imports): Python imports the folder as a namespace package there.
"""
