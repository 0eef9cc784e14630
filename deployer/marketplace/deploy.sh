#!/bin/sh
# The entrypoint GKE Marketplace and mpdev call for an install.
set -eu
exec triton-gke-deployer deploy "$@"
