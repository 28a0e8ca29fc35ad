"""`python -m tfrecords.translate`: the former name of `python -m trainers.translate` (the command
writes translated pairs as parquet, not TFRecords), kept so that existing scripts keep working."""

import runpy

if __name__ == "__main__":
    runpy.run_module("trainers.translate", run_name="__main__", alter_sys=True)
