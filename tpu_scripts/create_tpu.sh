#!/usr/bin/env bash
# Create the TPU VM or pod slice and wait until it is READY:
#   tpu_scripts/create_tpu.sh --tpu_name=esci --zone=us-central2-b --accelerator_type=v4-8 [--spot] [--dry_run]
# --spot (or --queued=true) requests it as a queued resource, which waits for capacity instead of
# failing when the zone has none; without it, `tpu-vm create` makes it at once or fails.
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_flags "$@"
check_tpu_flags

mapfile -t PROJECT < <(project_args)
OPTIONAL=()
[[ -n "${FLAGS[service_account]}" ]] && OPTIONAL+=("--service-account=${FLAGS[service_account]}")
OPTIONAL+=("--scopes=https://www.googleapis.com/auth/cloud-platform")  # the workers write to gs://
[[ "${FLAGS[spot]}" == true ]] && OPTIONAL+=(--spot)

if [[ "$QUEUED" == true ]]; then
  run gcloud compute tpus queued-resources create "$QR_ID" --node-id="${FLAGS[tpu_name]}" --zone="${FLAGS[zone]}" \
    "${PROJECT[@]}" --accelerator-type="${FLAGS[accelerator_type]}" --runtime-version="$RUNTIME_VERSION" "${OPTIONAL[@]}"
  note "polled every 30 s until the queued resource is ACTIVE (FAILED or SUSPENDED stops with the reason):"
  describe=(gcloud compute tpus queued-resources describe "$QR_ID" --zone="${FLAGS[zone]}" "${PROJECT[@]}"
            --format='value(state.state)')
  if [[ "${FLAGS[dry_run]}" == true ]]; then
    run "${describe[@]}"
  else
    while :; do
      state="$("${describe[@]}")"
      case "$state" in
        ACTIVE) break ;;
        FAILED | SUSPENDED)
          die "queued resource $QR_ID is $state: $(gcloud compute tpus queued-resources describe "$QR_ID" \
            --zone="${FLAGS[zone]}" "${PROJECT[@]}" --format='value(state)' | tr '\n' ' ')" 1 ;;
        *) note "queued resource $QR_ID: $state"; sleep 30 ;;
      esac
    done
  fi
else
  [[ "${FLAGS[preemptible]}" == true ]] && OPTIONAL+=(--preemptible)
  run gcloud compute tpus tpu-vm create "${FLAGS[tpu_name]}" --zone="${FLAGS[zone]}" "${PROJECT[@]}" \
    --accelerator-type="${FLAGS[accelerator_type]}" --version="$RUNTIME_VERSION" "${OPTIONAL[@]}"
fi
if [[ "${FLAGS[dry_run]}" == true ]]; then
  note "then waits until ${FLAGS[tpu_name]} (${FLAGS[accelerator_type]}, $RUNTIME_VERSION) is READY"
else
  until [[ "$(tpu_state)" == READY ]]; do note "waiting for ${FLAGS[tpu_name]} to be READY"; sleep 15; done
  note "${FLAGS[tpu_name]} (${FLAGS[accelerator_type]}, $RUNTIME_VERSION) is READY"
fi
