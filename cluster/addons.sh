#!/usr/bin/env bash
# Applies the cluster's addons (cluster/addons/*.yaml, with this cluster's names and images
# filled in): CoreDNS, the metrics-server addon, and the permissions of the host-side agents.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export CLUSTER_DOMAIN DNS_SVC_IP COREDNS_IMAGE METRICS_SERVER_IMAGE
for f in "$CLUSTER_DIR"/addons/*.yaml; do
  # shellcheck disable=SC2016
  envsubst '${CLUSTER_DOMAIN} ${DNS_SVC_IP} ${COREDNS_IMAGE} ${METRICS_SERVER_IMAGE}' <"$f" \
    | kc apply --server-side --field-manager selfheal-lb-cluster -f - >/dev/null \
    || die "could not apply $(basename "$f")"
done
