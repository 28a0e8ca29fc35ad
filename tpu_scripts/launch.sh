#!/usr/bin/env bash
# Start trainers.fit or trainers.recipe on the TPU's workers, detached (nohup), logs to
# <output_dir>/logs/worker-<N>.log every 30 s, exit status to <output_dir>/logs/worker-<N>.exit:
#   tpu_scripts/launch.sh --tpu_name=esci --zone=us-central2-b --output_dir=gs://BUCKET/runs/xlmr \
#       [--module=recipe] [--dry_run] -- --flagfile=trainers/flags/tpu.flags --examples=gs://... --products=gs://...
# The trainer gets --output_dir, --strategy=tpu and --tpu_address (local on one host, the TPU's name
# on a pod slice) before the flags after --, which may override them. Relaunching the same command
# resumes the run from its checkpoint in --output_dir (watch.sh does that after a preemption).
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_flags "$@"
check_tpu_flags
check_gs output_dir
case "${FLAGS[module]}" in
  fit | recipe) ;;
  *) die "--module must be fit or recipe, got '${FLAGS[module]}'" ;;
esac
workers="$(trainer_workers)"

output_dir="${FLAGS[output_dir]%/}"
environment=(env "TPU_NAME=${FLAGS[tpu_name]}")
tpu_address=local
if [[ "$IS_POD" == true ]]; then  # one client on worker 0; the -pod runtime serves the other hosts
  environment+=(TPU_LOAD_LIBRARY=0)
  tpu_address="${FLAGS[tpu_name]}"
fi
trainer=("${environment[@]}" .venv/bin/python -m "trainers.${FLAGS[module]}" --output_dir="$output_dir"
         --strategy=tpu --tpu_address="$tpu_address" "${EXTRA_ARGS[@]}")
tpu_ssh "$workers" "cd $REMOTE_DIR && bash tpu_scripts/worker_run.sh $(quote "$output_dir/logs" "${trainer[@]}")"
note "watch it: tpu_scripts/watch.sh with the same flags (or gcloud storage cat $output_dir/logs/worker-0.log)"
