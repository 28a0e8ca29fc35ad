#!/usr/bin/env bash
# Build the TFRecords from the staged files into <bucket>/tfrecords, on worker 0 of the TPU (next
# to the data; the workstation needs no TensorFlow):
#   tpu_scripts/build_tfrecords.sh --tpu_name=esci --zone=us-central2-b --bucket=gs://BUCKET/esci \
#       [--tokenizer=xlm_roberta:gs://BUCKET/xlmr_tokenizer --max_length=128] [--dry_run] [-- more tfrecords.build flags]
# trainers.fit then reads them: --train_tfrecords='<bucket>/tfrecords/train-*' --eval_tfrecords='<bucket>/tfrecords/test-*'.
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_flags "$@"
check_tpu_flags
check_gs bucket
check_int max_length
check_int num_shards

data="${FLAGS[bucket]%/}"
build=(.venv/bin/python -m tfrecords.build
       --examples="$data/shopping_queries_dataset_examples.parquet"
       --products="$data/shopping_queries_dataset_products.parquet"
       --output_dir="$data/tfrecords" --tokenizer="${FLAGS[tokenizer]}" --max_length="${FLAGS[max_length]}"
       --num_shards="${FLAGS[num_shards]}" --task="${FLAGS[task]}" "${EXTRA_ARGS[@]}")
tpu_ssh 0 "cd $REMOTE_DIR && $(quote "${build[@]}")"
