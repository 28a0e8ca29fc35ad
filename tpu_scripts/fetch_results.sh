#!/usr/bin/env bash
# Copy a run's results from Cloud Storage to this machine (metrics.json, best_model.keras,
# predictions, TensorBoard logs, the workers' logs; a recipe's report, final/ ranker and stages):
#   tpu_scripts/fetch_results.sh --output_dir=gs://BUCKET/runs/xlmr --dest=runs/xlmr [--include_checkpoints] [--dry_run]
# Checkpoints and the run's TFRecords (checkpoints/, data/ at any depth) stay in the bucket unless
# --include_checkpoints. A rerun copies only what changed (gcloud storage rsync).
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_flags "$@"
check_gs output_dir
require dest

exclude=()
[[ "${FLAGS[include_checkpoints]}" == true ]] || exclude=("--exclude=(^|.*/)(checkpoints|data)/.*")
run mkdir -p "${FLAGS[dest]}"
run gcloud storage rsync "${FLAGS[output_dir]%/}" "${FLAGS[dest]}" --recursive "${exclude[@]}"
note "results in ${FLAGS[dest]} (metrics.json / report.json)"
