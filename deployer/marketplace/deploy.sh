#!/bin/sh
# The entrypoint GKE Marketplace and `mpdev install` call (Google's /bin/deploy.sh): deploy;
# any failure marks the Application Failed; success ends by deleting the deployer's own
# ServiceAccount, as Google's clean_iam_resources.sh does.
set -eu
exec triton-gke-deployer deploy --marketplace-job "$@"
