#!/usr/bin/env bash
# Install esci-tf on every worker of the TPU (--worker=all) in ~/esci-tf/.venv:
#   tpu_scripts/setup_workers.sh --tpu_name=esci --zone=us-central2-b [--repo_url=URL --ref=BRANCH] [--dry_run]
# Default: this checkout's HEAD, as a git archive copied to each worker (uncommitted changes are
# not shipped: commit them first). Runs tpu_scripts/setup_tpu_vm.sh there.
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_flags "$@"
check_tpu_flags

mapfile -t PROJECT < <(project_args)
CHECK_TPU=1
[[ "$IS_POD" == true ]] && CHECK_TPU=0  # a pod slice's TPU is initialised by its one client (launch.sh)
if [[ -n "${FLAGS[repo_url]}" ]]; then
  remote="$(quote env "REPO_URL=${FLAGS[repo_url]}" "REF=${FLAGS[ref]}" "CHECK_TPU=$CHECK_TPU" "DIR=$REMOTE_DIR")"
  tpu_ssh all "rm -rf $REMOTE_DIR && git clone ${FLAGS[ref]:+--branch $(quote "${FLAGS[ref]}") }$(quote "${FLAGS[repo_url]}") $REMOTE_DIR && $remote bash $REMOTE_DIR/tpu_scripts/setup_tpu_vm.sh"
else
  [[ -z "${FLAGS[ref]}" ]] || die "--ref needs --repo_url (without it this checkout's HEAD is shipped)"
  git -C "$REPO_DIR" rev-parse --verify -q HEAD >/dev/null || die "$REPO_DIR is not a git checkout with a commit; give --repo_url"
  if [[ -n "$(git -C "$REPO_DIR" status --porcelain --untracked-files=no)" ]]; then
    note "warning: uncommitted changes in $REPO_DIR are not shipped (HEAD is)"
  fi
  archive="${TMPDIR:-/tmp}/esci-tf-${FLAGS[tpu_name]}.tar.gz"
  run git -C "$REPO_DIR" archive --format=tar.gz --output="$archive" HEAD
  run gcloud compute tpus tpu-vm scp "$archive" "${FLAGS[tpu_name]}:esci-tf.tar.gz" --zone="${FLAGS[zone]}" "${PROJECT[@]}" --worker=all
  # The old files go, the worker's .venv stays (a rerun only updates it).
  tpu_ssh all "mkdir -p $REMOTE_DIR && find $REMOTE_DIR -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf {} + && tar -xzf esci-tf.tar.gz -C $REMOTE_DIR && CHECK_TPU=$CHECK_TPU DIR=$REMOTE_DIR bash $REMOTE_DIR/tpu_scripts/setup_tpu_vm.sh"
fi
