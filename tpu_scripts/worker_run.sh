#!/usr/bin/env bash
# Runs on a TPU worker (launch.sh starts it there over ssh): run COMMAND in the background under
# nohup, detached from the ssh session, with its output appended to the worker's log, which is
# copied to LOG_URI/worker-<N>.log every 30 s and at the end; its exit status then goes to
# LOG_URI/worker-<N>.exit (143: stopped by SIGTERM, e.g. a spot preemption; watch.sh relaunches).
#   bash tpu_scripts/worker_run.sh gs://BUCKET/run/logs .venv/bin/python -m trainers.fit ...
# The log carries over relaunches (and recreated VMs: it is first copied back from LOG_URI).
set -euo pipefail
(($# >= 2)) || { echo "usage: worker_run.sh LOG_URI COMMAND..." >&2; exit 2; }
LOG_URI="${1%/}"
shift
# The worker's index in the slice, from the TPU VM's metadata (TPU_WORKER_ID overrides it).
WORKER="${TPU_WORKER_ID:-$(curl -s -f -m 5 -H 'Metadata-Flavor: Google' \
  http://metadata.google.internal/computeMetadata/v1/instance/attributes/agent-worker-number 2>/dev/null || echo 0)}"
LOCAL_LOG="${ESCI_LOG_DIR:-$HOME/esci-tf-logs}/worker-$WORKER.log"
REMOTE_LOG="$LOG_URI/worker-$WORKER.log"
EXIT_URI="$LOG_URI/worker-$WORKER.exit"

if [[ -z "${ESCI_WORKER_RUN_DETACHED:-}" ]]; then
  mkdir -p "$(dirname "$LOCAL_LOG")"
  # A stale exit status would tell watch.sh this run has ended.
  gcloud storage rm --quiet "$EXIT_URI" >/dev/null 2>&1 || true
  [[ -s "$LOCAL_LOG" ]] || gcloud storage cp "$REMOTE_LOG" "$LOCAL_LOG" >/dev/null 2>&1 || true
  ESCI_WORKER_RUN_DETACHED=1 nohup setsid bash "$0" "$LOG_URI" "$@" >/dev/null 2>&1 </dev/null &
  echo "worker $WORKER: started $*; log $REMOTE_LOG"
  exit 0
fi

upload() { gcloud storage cp "$LOCAL_LOG" "$REMOTE_LOG" >/dev/null 2>&1 || true; }
# The header names the trainer's pid: the subshell's, which exec hands to the command.
(echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) worker $WORKER on $(hostname), pid $BASHPID: $*"; exec "$@") >>"$LOCAL_LOG" 2>&1 &
child=$!
# A preemption's SIGTERM reaches every process of the VM, the trainer included, which writes a
# checkpoint and exits 143: this script only waits for that (passing the signal on would send the
# trainer a second one). To stop a run by hand: kill -TERM <the pid above>.
trap ':' TERM INT HUP
(while kill -0 "$child" 2>/dev/null; do sleep "${ESCI_LOG_SYNC_SECONDS:-30}"; upload; done) &
status=0
while :; do
  wait "$child" && status=0 || status=$?
  kill -0 "$child" 2>/dev/null || break  # wait returned for a trapped signal: the trainer still runs
done
echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) worker $WORKER: exit $status" >>"$LOCAL_LOG"
upload
echo "$status" >"$LOCAL_LOG.exit"
gcloud storage cp "$LOCAL_LOG.exit" "$EXIT_URI" >/dev/null 2>&1 || true
