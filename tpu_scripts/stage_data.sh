#!/usr/bin/env bash
# Copy the official ESCI files to Cloud Storage, where the TPU workers read them:
#   tpu_scripts/stage_data.sh --source_dir=esci-data/shopping_queries_dataset --bucket=gs://BUCKET/esci \
#       [--create_bucket --zone=us-central2-b] [--dry_run]
# Copies shopping_queries_dataset_{examples,products}.parquet (and _sources.csv when present) to
# <bucket>/; tfrecords.build, trainers.fit and trainers.recipe read them from there.
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_flags "$@"
require source_dir
check_gs bucket

OFFICIAL=(shopping_queries_dataset_examples.parquet shopping_queries_dataset_products.parquet)
[[ -d "${FLAGS[source_dir]}" ]] || die "--source_dir=${FLAGS[source_dir]} is not a directory" 1
files=()
for name in "${OFFICIAL[@]}"; do
  [[ -f "${FLAGS[source_dir]}/$name" ]] || die "--source_dir=${FLAGS[source_dir]} has no $name (the official files: https://github.com/amazon-science/esci-data)" 1
  files+=("${FLAGS[source_dir]}/$name")
done
[[ -f "${FLAGS[source_dir]}/shopping_queries_dataset_sources.csv" ]] && files+=("${FLAGS[source_dir]}/shopping_queries_dataset_sources.csv")

mapfile -t PROJECT < <(project_args)
if [[ "${FLAGS[create_bucket]}" == true ]]; then
  require zone
  bucket_root="${FLAGS[bucket]#gs://}"
  run gcloud storage buckets create "gs://${bucket_root%%/*}" "${PROJECT[@]}" --location="${FLAGS[zone]%-*}" \
    --uniform-bucket-level-access
fi
run gcloud storage cp "${files[@]}" "${FLAGS[bucket]%/}/"
