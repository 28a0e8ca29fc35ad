"""Ensembles across recipe runs (trainers.ensemble): each run's members weighted by their
out-of-fold scores on the runs' shared, aligned folds (esci_tf.ensembles.build)."""
