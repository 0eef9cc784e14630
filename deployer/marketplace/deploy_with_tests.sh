#!/bin/sh
# The entrypoint `mpdev verify` calls (Google's /bin/deploy_with_tests.sh): lay
# /data-test/schema.yaml over the schema, deploy, run the chart's tests as testers with their
# output prefixed SMOKE_TEST, then delete the deployer's own ServiceAccount. mpdev deletes the
# application, and the testers with it, itself.
set -eu
exec triton-gke-deployer verify --keep-app --marketplace-job "$@"
