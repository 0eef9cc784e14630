"""What a release of this project is checked against before it ships: NVIDIA's security bulletins
for the default Triton release, the third-party manifests the docs apply, and every image the
project runs (``python -m security``, ``make audit``)."""
