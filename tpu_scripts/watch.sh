#!/usr/bin/env bash
# Follow a launched run until it ends, relaunching it after a preemption, with the same flags
# as launch.sh (and create_tpu.sh's, to recreate the TPU):
#   tpu_scripts/watch.sh --tpu_name=esci --zone=us-central2-b --spot --output_dir=gs://BUCKET/runs/xlmr -- <trainer flags>
# Every --interval seconds: the TPU's state and worker 0's exit status and last log lines. Exit 0:
# the run finished (exit 0). Exit 143 (SIGTERM: the trainer wrote a checkpoint) on a live TPU:
# launch.sh again. The TPU PREEMPTED, TERMINATED or gone: delete it, create_tpu.sh, setup_workers.sh,
# launch.sh. Each relaunch resumes from the checkpoint in --output_dir. Any other exit status
# stops the watch with exit 1 and the log's location.
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_flags "$@"
check_tpu_flags
check_gs output_dir
check_int interval
check_int max_relaunches
trainer_workers >/dev/null

mapfile -t PROJECT < <(project_args)
logs="${FLAGS[output_dir]%/}/logs"
describe=(gcloud compute tpus tpu-vm describe "${FLAGS[tpu_name]}" --zone="${FLAGS[zone]}" "${PROJECT[@]}" --format='value(state)')
exit_status=(gcloud storage cat "$logs/worker-0.exit")
log_tail=(gcloud storage cat "$logs/worker-0.log")

relaunch() { sibling launch.sh "$@"; }
recreate() {
  if [[ "${1:-}" != NOT_FOUND ]]; then sibling delete_tpu.sh "${@:2}"; fi
  sibling create_tpu.sh "${@:2}"
  sibling setup_workers.sh "${@:2}"
  sibling launch.sh "${@:2}"
}

if [[ "${FLAGS[dry_run]}" == true ]]; then
  note "every ${FLAGS[interval]} s until the run ends:"
  run "${describe[@]}"
  run "${exit_status[@]}"
  run "${log_tail[@]}"
  note "exit status 143 (preempted: SIGTERM, checkpoint written) on a READY TPU: relaunch the same command"
  relaunch "$@"
  note "TPU PREEMPTED, TERMINATED or not found: recreate it, reinstall, relaunch the same command"
  recreate PREEMPTED "$@"
  note "exit status 0: done (fetch_results.sh); any other: stop with exit 1"
  exit 0
fi

relaunches=0
count_relaunch() {
  relaunches=$((relaunches + 1))
  [[ "$relaunches" -le "${FLAGS[max_relaunches]}" ]] || die "gave up after ${FLAGS[max_relaunches]} relaunches; log: $logs/worker-0.log" 1
}
while :; do
  state="$("${describe[@]}" 2>/dev/null || echo NOT_FOUND)"
  state="${state:-NOT_FOUND}"
  case "$state" in
    READY)
      status="$("${exit_status[@]}" 2>/dev/null || true)"
      last="$("${log_tail[@]}" 2>/dev/null | grep -v '^=== ' | tail -n 1 || true)"  # the trainer's last line
      case "$status" in
        "") note "running (${state}): ${last:-no log yet}" ;;
        0) note "finished: $last"; exit 0 ;;
        143)
          count_relaunch
          note "preempted (exit 143: $last); relaunch $relaunches of at most ${FLAGS[max_relaunches]}"
          relaunch "$@" ;;
        *) die "the run failed with exit status $status: $last (log: $logs/worker-0.log)" 1 ;;
      esac ;;
    PREEMPTED | TERMINATED | STOPPED | NOT_FOUND)
      count_relaunch
      note "TPU ${FLAGS[tpu_name]} is $state; recreating it (relaunch $relaunches of at most ${FLAGS[max_relaunches]})"
      recreate "$state" "$@" ;;
    *) note "TPU ${FLAGS[tpu_name]} is $state" ;;
  esac
  sleep "${FLAGS[interval]}"
done
