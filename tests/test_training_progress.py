"""Progress bar step counting (resumed runs, steps_per_execution) and the summary table."""

import io

from esci_tf.training.progress import ProgressBar, summary_table


def test_progress_counts_steps_across_executions_and_resume():
    bar = ProgressBar(total_steps=10, batch_size=4, initial_step=2, file=io.StringIO())
    bar.on_train_begin()
    bar.on_epoch_begin(0)
    for batch in (1, 3, 5):  # steps_per_execution=2: Keras reports every second batch
        bar.on_train_batch_end(batch, {"loss": 0.5})
    assert bar.step == 8 and bar.last_loss == 0.5
    stats = bar.throughput()
    assert stats["steps"] == 6 and stats["examples_per_second"] > 0
    bar.close()


def test_summary_table_aligns_names_and_values():
    table = summary_table([("NDCG", 0.912345), ("steps", 100)], title="run")
    lines = table.splitlines()
    assert "run" in lines[1]
    assert "NDCG  | 0.9123" in table and "steps |    100" in table
    assert len({len(line) for line in lines if "|" in line}) == 1
