"""Write the demo data's translation table (esci_tf.data.translation.demo), so the demo runs
`trainers.translate --backend table` end to end, offline:

    python -m trainers.demo_translation --examples X --products Y --targets es,jp,us --output T
"""

from absl import app, flags

from esci_tf import cli
from esci_tf.data.translation.demo import demo_table_rows
from esci_tf.data.translation.table import write_table

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("examples", None, "Generated demo examples (esci_tf.data.synthetic).", required=True)
    flags.DEFINE_string("products", None, "Their products.", required=True)
    flags.DEFINE_list("targets", ["es", "jp", "us"], "Locales trainers.translate will translate into.")
    flags.DEFINE_list("fields", ["title", "bullet_point", "description"], "Product fields it will translate.")
    flags.DEFINE_enum("split", "train", ["train", "test", "all"], "Rows it will translate.")
    flags.DEFINE_enum("task", "all", ["1", "2", "3", "all"], "KDD Cup task of those rows.")
    flags.DEFINE_string("output", None, "The table to write (parquet).", required=True)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    rows = list(demo_table_rows(FLAGS.examples, FLAGS.products, FLAGS.targets, FLAGS.fields, FLAGS.split,
                                FLAGS.task))
    write_table(rows, FLAGS.output)
    print(f"demo translation table: {len(rows)} translations in {FLAGS.output}")


if __name__ == "__main__":
    define_flags()
    cli.run(main, "trainers.demo_translation")
