"""The flags of trainers.ensemble, one per esci_tf.ensembles.settings.EnsembleSettings setting, in
their own FlagValues so they never clash with fit's."""

from absl import flags

from esci_tf.ensembles.settings import EnsembleSettings

ENSEMBLE_FLAGS = flags.FlagValues()


def define_flags(flag_values=ENSEMBLE_FLAGS):
    """Define the ensemble flags once in `flag_values`."""
    if "runs" in flag_values:
        return flag_values
    defaults = EnsembleSettings((), "", "", "")
    flags.DEFINE_list("runs", [], "trainers.recipe --output_dirs whose members join: each run's cross-encoder and "
                      "bi-encoder (if it trained one). Their folds must be aligned (--folds_from).",
                      flag_values=flag_values)
    flags.DEFINE_string("output_dir", None, "E/: the ensemble's ranker directory (for trainers.predict and "
                        "trainers.export), with report.json and report.png.", flag_values=flag_values)
    flags.DEFINE_string("examples", None, "The labeled examples the runs trained on (their training pairs are "
                        "read from it).", flag_values=flag_values)
    flags.DEFINE_string("products", None, "Products file matching --examples.", flag_values=flag_values)
    flags.DEFINE_list("members", list(defaults.members), "Members besides the runs': bm25, zero_shot (the first "
                      "run's backbone and checkpoint).", flag_values=flag_values)
    flags.DEFINE_integer("ensemble_folds", defaults.ensemble_folds, "Query parts of the nested cross-validation "
                         "that chooses the weights (and the fallback to the best member) and estimates the ensemble "
                         "against its best member.", flag_values=flag_values)
    flags.DEFINE_float("correlation_limit", defaults.correlation_limit, "A member correlating this much with a "
                       "stronger member gets weight 0 (the two share the stronger one's weight).",
                       flag_values=flag_values)
    flags.DEFINE_float("weight_step", defaults.weight_step, "Grid step of the ensemble weights.",
                       flag_values=flag_values)
    flags.DEFINE_integer("min_locale_queries", defaults.min_locale_queries, "Locales with at least this many "
                         "queries get weights of their own (the others: the weights of the members covering "
                         "every locale).", flag_values=flag_values)
    flags.DEFINE_integer("seed", defaults.seed, "Seed of the nested cross-validation's query parts.",
                         flag_values=flag_values)
    flags.DEFINE_integer("bootstrap_samples", defaults.bootstrap_samples, "Bootstrap resamples of the report's "
                         "intervals.", flag_values=flag_values)
    flags.DEFINE_integer("min_list_size", defaults.min_list_size, "Queries with at least this many pairs count "
                         "as long lists in the report.", flag_values=flag_values)
    flags.DEFINE_enum("on_bad_rows", defaults.on_bad_rows, ["raise", "skip"], "Bad rows of --examples stop the "
                      "run, or are dropped.", flag_values=flag_values)
    for name in ("output_dir", "examples", "products"):
        flags.mark_flag_as_required(name, flag_values=flag_values)
    return flag_values


def ensemble_settings(flag_values=ENSEMBLE_FLAGS) -> EnsembleSettings:
    """The EnsembleSettings the parsed flags describe."""
    names = [f for f in EnsembleSettings.__dataclass_fields__]
    values = {name: flag_values[name].value for name in names}
    values["runs"], values["members"] = tuple(values["runs"]), tuple(values["members"])
    return EnsembleSettings(**values)
