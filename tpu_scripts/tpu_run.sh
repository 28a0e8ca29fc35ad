#!/usr/bin/env bash
# A whole TPU run in one command: create the TPU, install on every worker, stage the official
# files (--source_dir), build TFRecords (--build_tfrecords), launch, watch (relaunching after a
# preemption), fetch the results (--dest) and delete the TPU (unless --keep_vm):
#   tpu_scripts/tpu_run.sh --tpu_name=esci --zone=us-central2-b --accelerator_type=v4-8 --spot \
#       --bucket=gs://BUCKET/esci --source_dir=esci-data/shopping_queries_dataset --build_tfrecords \
#       --output_dir=gs://BUCKET/runs/xlmr --dest=runs/xlmr [--dry_run] -- --flagfile=trainers/flags/tpu.flags
# --dry_run prints every gcloud command in order. Each step is also its own script (--help).
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_flags "$@"
check_tpu_flags
check_gs output_dir
[[ -z "${FLAGS[source_dir]}" && "${FLAGS[build_tfrecords]}" != true ]] || check_gs bucket
[[ "${FLAGS[build_tfrecords]}" != true || "${FLAGS[module]}" == fit ]] ||
  die "--build_tfrecords is for --module=fit (the recipe builds each fold's records from --examples/--products)"
[[ "${FLAGS[keep_vm]}" == true || -n "${FLAGS[dest]}" ]] ||
  die "--dest is required (where the results go before the TPU is deleted), or pass --keep_vm"

# Before the TPU is made: fail on a bad flag now, not after minutes of set-up.
trainer_workers >/dev/null
flags=("$@")
before=() after=()
for ((i = 0; i < ${#flags[@]}; i++)); do
  if [[ "${flags[i]}" == -- ]]; then after=("${flags[@]:i+1}"); break; fi
  before+=("${flags[i]}")
done
data="${FLAGS[bucket]%/}"
inputs=()
if [[ "${FLAGS[build_tfrecords]}" == true ]]; then
  inputs=("--train_tfrecords=$data/tfrecords/train-*" "--eval_tfrecords=$data/tfrecords/test-*")
elif [[ -n "${FLAGS[source_dir]}" ]]; then
  inputs=("--examples=$data/shopping_queries_dataset_examples.parquet"
          "--products=$data/shopping_queries_dataset_products.parquet")
fi
trainer_flags=("${before[@]}" -- "${inputs[@]}" "${after[@]}")

note "1. create the TPU"
sibling create_tpu.sh "${before[@]}"
note "2. install esci-tf on every worker"
sibling setup_workers.sh "${before[@]}"
if [[ -n "${FLAGS[source_dir]}" ]]; then
  note "3. stage the official files"
  sibling stage_data.sh "${before[@]}"
fi
if [[ "${FLAGS[build_tfrecords]}" == true ]]; then
  note "4. build the TFRecords on worker 0"
  sibling build_tfrecords.sh "${before[@]}"
fi
note "5. launch trainers.${FLAGS[module]}"
sibling launch.sh "${trainer_flags[@]}"
note "6. watch until it ends (relaunching after a preemption)"
sibling watch.sh "${trainer_flags[@]}"
if [[ -n "${FLAGS[dest]}" ]]; then
  note "7. fetch the results"
  sibling fetch_results.sh "${before[@]}"
fi
if [[ "${FLAGS[keep_vm]}" != true ]]; then
  note "8. delete the TPU"
  sibling delete_tpu.sh "${before[@]}"
fi
