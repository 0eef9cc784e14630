#!/bin/sh
# The entrypoint `mpdev verify` calls: deploy, run the chart's tests, remove the testers.
# mpdev deletes the application's namespace itself afterwards.
set -eu
exec triton-gke-deployer verify --keep-app "$@"
