#!/usr/bin/env bash
# Delete the TPU VM (and its queued resource, when it was requested as one):
#   tpu_scripts/delete_tpu.sh --tpu_name=esci --zone=us-central2-b [--spot] [--dry_run]
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_flags "$@"
check_tpu_flags

mapfile -t PROJECT < <(project_args)
if [[ "$QUEUED" == true ]]; then  # --force deletes the TPU VM with the request
  run gcloud compute tpus queued-resources delete "$QR_ID" --zone="${FLAGS[zone]}" "${PROJECT[@]}" --force --quiet
else
  run gcloud compute tpus tpu-vm delete "${FLAGS[tpu_name]}" --zone="${FLAGS[zone]}" "${PROJECT[@]}" --quiet
fi
