#!/usr/bin/env bash
# Shared by every tpu_scripts/*.sh run from a workstation: the one set of flags (each script reads
# the ones it needs, so a script can hand its whole command line to another), one-line errors,
# the gcloud arguments of the TPU, and `run`, which prints a command and runs it, or with
# --dry_run only prints it (one command a line, shell-quoted, ready to paste; lines starting
# with '#' say what happens between commands).

set -euo pipefail

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck disable=SC2034  # REPO_DIR, REMOTE_DIR, EXTRA_ARGS, QR_ID: read by the scripts that source this
REPO_DIR="$(dirname "$SCRIPTS_DIR")"
PROG="$(basename "$0")"
RUNTIME_TF_VERSION="2.20.0"  # setup.py's TensorFlow line; the TPU runtimes are tpu-vm-tf-<it>-[pod-]pjrt
# shellcheck disable=SC2034
REMOTE_DIR="esci-tf"  # the checkout on every worker, relative to the login's home

declare -a FLAG_NAMES=() EXTRA_ARGS=()
declare -A FLAGS=() FLAG_HELP=() FLAG_IS_BOOL=()  # FLAGS[name]: the value of --name

die() {  # one line on stderr, exit 2 (a flag or setting) unless a code is given
  echo "$PROG: $1" >&2
  exit "${2:-2}"
}

define_flag() {  # NAME DEFAULT HELP
  FLAG_NAMES+=("$1")
  FLAG_HELP[$1]="$3"
  FLAGS[$1]="$2"
}

define_bool() {  # NAME DEFAULT(true|false) HELP
  define_flag "$@"
  FLAG_IS_BOOL[$1]=1
}

# The TPU.
define_flag tpu_name "" "Name of the TPU VM (or pod slice) to create and use."
define_flag zone "" "Zone of the TPU, e.g. us-central2-b (v4), us-west4-a (v5e), us-east5-a (v5p)."
define_flag project "" "Google Cloud project (default: gcloud's core/project)."
define_flag accelerator_type "v4-8" "v4-8, v5litepod-8, v5p-8 (one host) or a pod slice: v4-32, v5litepod-16, v5p-32 ..."
define_flag runtime_version "" "TPU software version (default tpu-vm-tf-$RUNTIME_TF_VERSION-pjrt, -pod-pjrt for pod slices)."
define_bool spot false "Spot TPU (cheaper; preempted at any time: watch.sh recreates it and resumes)."
define_bool preemptible false "Preemptible TPU (the older kind of spot capacity; at most 24 h)."
define_flag queued "auto" "true: request the TPU as a queued resource (waits for capacity); auto: true with --spot."
define_flag service_account "" "Service account of the TPU VMs (default: the project's compute default)."
# The code on the workers.
define_flag repo_url "" "Clone this repository on the workers (default: ship this checkout's HEAD with git archive)."
define_flag ref "" "Branch or tag to clone with --repo_url."
# Data.
define_flag bucket "" "gs://BUCKET[/PREFIX] for the staged files and TFRecords."
define_flag source_dir "" "Local directory holding the official ESCI files to stage."
define_bool create_bucket false "Create --bucket first (in the TPU's region)."
define_flag tokenizer "xlm_roberta" "tfrecords.build --tokenizer (BACKBONE[:PATH]) for the TFRecords."
define_flag max_length "128" "tfrecords.build --max_length."
define_flag num_shards "64" "tfrecords.build --num_shards."
define_flag task "1" "tfrecords.build --task."
# The run.
define_flag module "fit" "What to launch: fit (trainers.fit) or recipe (trainers.recipe)."
define_flag output_dir "" "gs:// run directory (checkpoints, results; logs in <it>/logs)."
define_flag workers "auto" "Workers that run the trainer: all, 0, or auto (all on one host; 0 on a pod slice, where TensorFlow's one client drives every host)."
define_flag interval "60" "Seconds between polls of watch.sh."
define_flag max_relaunches "20" "watch.sh gives up after this many preemptions."
define_flag dest "" "Local directory for fetch_results.sh."
define_bool include_checkpoints false "fetch_results.sh also copies checkpoints/ and data/."
define_bool build_tfrecords false "tpu_run.sh: build TFRecords into <bucket>/tfrecords and train fit on them."
define_bool keep_vm false "tpu_run.sh: leave the TPU VM running at the end."
define_bool dry_run false "Print the gcloud commands instead of running them."

usage() {  # the script's header comment, then every flag
  sed -n '2,/^[^#]/{/^# shellcheck/d;/^#/s/^# \{0,1\}//p}' "$0"
  echo "usage: $PROG [--flag=value ...] [-- flags for the trainer]"
  echo "Flags (shared by every tpu_scripts/*.sh; each reads the ones it needs):"
  local name
  for name in "${FLAG_NAMES[@]}"; do
    printf '  --%s (default %s)\n      %s\n' "$name" "'${FLAGS[$name]}'" "${FLAG_HELP[$name]}"
  done
}

# shellcheck disable=SC2034  # EXTRA_ARGS is read by the scripts
parse_flags() {  # "$@" -> FLAGS and EXTRA_ARGS (everything after --)
  while (($#)); do
    local arg="$1" name value
    shift
    case "$arg" in
      --) EXTRA_ARGS=("$@"); return 0 ;;
      -h | --help) usage; exit 0 ;;
      --*=*) name="${arg%%=*}"; name="${name#--}"; value="${arg#*=}" ;;
      --*)
        name="${arg#--}"
        if [[ -n "${FLAG_IS_BOOL[$name]:-}" ]]; then
          value=true
        elif [[ "$name" == no* && -n "${FLAG_IS_BOOL[${name#no}]:-}" ]]; then
          name="${name#no}"; value=false
        elif [[ -n "${FLAG_HELP[$name]:-}" ]]; then
          (($#)) || die "--$name needs a value"
          value="$1"; shift
        else
          die "unknown flag --$name (--help lists the flags)"
        fi ;;
      *) die "unexpected argument '$arg' (flags are --name=value; trainer flags go after --)" ;;
    esac
    [[ -n "${FLAG_HELP[$name]:-}" ]] || die "unknown flag --$name (--help lists the flags)"
    if [[ -n "${FLAG_IS_BOOL[$name]:-}" && "$value" != true && "$value" != false ]]; then
      die "--$name must be true or false, got '$value'"
    fi
    FLAGS[$name]="$value"
  done
}

require() {  # NAME...: each flag must be set
  local name
  for name in "$@"; do
    [[ -n "${FLAGS[$name]}" ]] || die "--$name is required (--help lists the flags)"
  done
}

check_tpu_flags() {  # the TPU's flags, and its derived settings: IS_POD, RUNTIME_VERSION, QUEUED, QR_ID
  require tpu_name zone
  [[ "${FLAGS[tpu_name]}" =~ ^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$ ]] ||
    die "--tpu_name must be lowercase letters, digits and hyphens, starting with a letter, got '${FLAGS[tpu_name]}'"
  [[ "${FLAGS[zone]}" =~ ^[a-z]+-[a-z]+[0-9]+-[a-z]$ ]] || die "--zone must look like us-central2-b, got '${FLAGS[zone]}'"
  local size
  if [[ "${FLAGS[accelerator_type]}" =~ ^(v2|v3|v4|v5p|v5litepod|v6e)-([0-9]+)$ ]]; then
    size="${BASH_REMATCH[2]}"
  else
    die "--accelerator_type must be a TPU type such as v4-8, v5litepod-8, v5p-8 or v4-32, got '${FLAGS[accelerator_type]}'"
  fi
  # v2/v3/v4/v5p count TensorCores (8 = one host of 4 chips), v5litepod/v6e count chips (8 = one host).
  IS_POD=false
  ((size > 8)) && IS_POD=true
  if [[ -n "${FLAGS[runtime_version]}" ]]; then
    RUNTIME_VERSION="${FLAGS[runtime_version]}"
  elif [[ "$IS_POD" == true ]]; then
    RUNTIME_VERSION="tpu-vm-tf-$RUNTIME_TF_VERSION-pod-pjrt"
  else
    RUNTIME_VERSION="tpu-vm-tf-$RUNTIME_TF_VERSION-pjrt"
  fi
  if [[ "$IS_POD" == true && "$RUNTIME_VERSION" == tpu-vm-tf-* && "$RUNTIME_VERSION" != *-pod* ]]; then
    die "--runtime_version=$RUNTIME_VERSION on the pod slice ${FLAGS[accelerator_type]}: TensorFlow needs the -pod runtime (tpu-vm-tf-$RUNTIME_TF_VERSION-pod-pjrt)"
  fi
  [[ "${FLAGS[spot]}" == true && "${FLAGS[preemptible]}" == true ]] && die "--spot and --preemptible exclude each other"
  case "${FLAGS[queued]}" in
    auto) QUEUED="${FLAGS[spot]}" ;;
    true | false) QUEUED="${FLAGS[queued]}" ;;
    *) die "--queued must be true, false or auto, got '${FLAGS[queued]}'" ;;
  esac
  [[ "$QUEUED" == true && "${FLAGS[preemptible]}" == true ]] &&
    die "--preemptible is not a queued-resource option; use --spot with --queued"
  # shellcheck disable=SC2034
  QR_ID="${FLAGS[tpu_name]}-qr"
  return 0
}

check_gs() {  # NAME: the flag must be a gs:// path
  local value="${FLAGS[$1]}"
  require "$1"
  [[ "$value" =~ ^gs://[a-z0-9][-a-z0-9_.]{1,221}[a-z0-9](/.*)?$ ]] ||
    die "--$1 must be a gs:// path (TPU workers read and write only Cloud Storage), got '$value'"
}

check_int() {  # NAME: a positive integer
  [[ "${FLAGS[$1]}" =~ ^[1-9][0-9]*$ ]] || die "--$1 must be a positive integer, got '${FLAGS[$1]}'"
}

quote() {  # ARG...: one shell-quoted line (what `run` prints; shlex.split reads it back)
  local out="" arg
  for arg in "$@"; do
    if [[ "$arg" =~ ^[-A-Za-z0-9_@%+=:,./]+$ ]]; then
      out+="$arg "
    else
      out+="'${arg//\'/\'\"\'\"\'}' "
    fi
  done
  printf '%s' "${out% }"
}

note() {  # what happens next, as a comment line (stdout with --dry_run, stderr otherwise)
  if [[ "${FLAGS[dry_run]}" == true ]]; then echo "# $*"; else echo "[$PROG] $*" >&2; fi
}

run() {  # COMMAND...: print it; run it unless --dry_run
  if [[ "${FLAGS[dry_run]}" == true ]]; then
    quote "$@"; echo
  else
    echo "+ $(quote "$@")" >&2
    "$@"
  fi
}

project_args() {  # gcloud's --project, when given
  if [[ -n "${FLAGS[project]}" ]]; then printf '%s\n' "--project=${FLAGS[project]}"; fi
}

tpu_ssh() {  # WORKER COMMAND: run a shell command line on the TPU's workers
  local -a project
  mapfile -t project < <(project_args)
  run gcloud compute tpus tpu-vm ssh "${FLAGS[tpu_name]}" --zone="${FLAGS[zone]}" "${project[@]}" \
    --worker="$1" --command="$2"
}

tpu_state() {  # prints the TPU's state (READY, CREATING, PREEMPTED, ...) or NOT_FOUND
  local -a project
  mapfile -t project < <(project_args)
  gcloud compute tpus tpu-vm describe "${FLAGS[tpu_name]}" --zone="${FLAGS[zone]}" "${project[@]}" \
    --format='value(state)' 2>/dev/null || echo NOT_FOUND
}

trainer_workers() {  # the --worker value that runs the trainer
  case "${FLAGS[workers]}" in
    auto) if [[ "$IS_POD" == true ]]; then echo 0; else echo all; fi ;;
    all | 0) echo "${FLAGS[workers]}" ;;
    *) die "--workers must be all, 0 or auto, got '${FLAGS[workers]}'" ;;
  esac
}

sibling() {  # SCRIPT ARGS...: another tpu_scripts script, with this run's --dry_run
  "$SCRIPTS_DIR/$1" "${@:2}"
}
