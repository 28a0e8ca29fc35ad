"""tfrecords: the command lines that build TFRecords (build) and translated pairs (translate);
the library they run is esci_tf.records and esci_tf.data."""

import esci_tf  # noqa: F401  (quiets TensorFlow logging before it is imported)
