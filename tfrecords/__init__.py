"""tfrecords: the command line that builds TFRecords (`python -m tfrecords.build`; the library it
runs is esci_tf.records and esci_tf.data), and `tfrecords.translate`, the former name of
`python -m trainers.translate`, kept for existing scripts."""

import esci_tf  # noqa: F401  (quiets TensorFlow logging before it is imported)
