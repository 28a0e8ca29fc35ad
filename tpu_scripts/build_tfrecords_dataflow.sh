#!/usr/bin/env bash
# Build the full data's TFRecords on Dataflow before a TPU run (tfrecords.build --runner=DataflowRunner:
# the same shards and summary.json as build_tfrecords.sh, on --max_num_workers machines instead of
# one TPU worker), from the staged files into <bucket>/tfrecords. The workstation submits the job:
# it needs `pip install -e .[beam]` and gcloud application-default credentials; the workers run the
# Dockerfile's image (BUILD.md, "Building and scoring on Dataflow"):
#   tpu_scripts/build_tfrecords_dataflow.sh --project=P --region=us-central2 --bucket=gs://BUCKET/esci \
#       --sdk_container_image=us-docker.pkg.dev/P/esci/beam:0.1.0 [--machine_type=n2-standard-8 \
#       --max_num_workers=32] [--tokenizer=... --max_length=128] [--dry_run] [-- more tfrecords.build flags]
# Then tpu_run.sh (without --build_tfrecords) or trainers.fit with --train_tfrecords='<bucket>/tfrecords/train-*'.
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
define_flag region "" "Dataflow region of the job (near the bucket), e.g. us-central2."
define_flag sdk_container_image "" "The Dockerfile's image in Artifact Registry (Beam's SDK, TensorFlow, esci-tf)."
define_flag machine_type "n2-standard-8" "Dataflow worker machine type."
define_flag max_num_workers "32" "Most Dataflow workers the job scales to."
define_flag python ".venv/bin/python" "Python with esci-tf[beam] that submits the job."
parse_flags "$@"
require project region sdk_container_image
check_gs bucket
check_int max_length
check_int num_shards
check_int max_num_workers

data="${FLAGS[bucket]%/}"
run "${FLAGS[python]}" -m tfrecords.build \
  --examples="$data/shopping_queries_dataset_examples.parquet" \
  --products="$data/shopping_queries_dataset_products.parquet" \
  --output_dir="$data/tfrecords" --tokenizer="${FLAGS[tokenizer]}" --max_length="${FLAGS[max_length]}" \
  --num_shards="${FLAGS[num_shards]}" --task="${FLAGS[task]}" \
  --runner=DataflowRunner --project="${FLAGS[project]}" --region="${FLAGS[region]}" \
  --temp_location="$data/dataflow_tmp" --sdk_container_image="${FLAGS[sdk_container_image]}" \
  --machine_type="${FLAGS[machine_type]}" --max_num_workers="${FLAGS[max_num_workers]}" "${EXTRA_ARGS[@]}"
