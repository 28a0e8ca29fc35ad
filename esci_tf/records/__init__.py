"""TFRecord shards of encoded (query, product) pairs: their schema, writing and checking them
(`writer`, `shards`), one job per shard run by worker processes (`shard_jobs`), frames -> checked
shards (`builder.build_shards`), summary.json (`summary`) and the tf.data reader (`dataset`).
The command line that builds them is `python -m tfrecords.build`."""
