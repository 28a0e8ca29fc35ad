"""--locales: train, evaluate, build or score only some locales' pairs.

The flag is a comma list of ESCI locales (us, es, jp); empty means every locale. Commands read
and check the official files whole first, then keep the rows of the given locales
(`select_locales`); a given locale without rows is an error naming the flag, so a typo or the
wrong file never trains on nothing. The kept locales are recorded with what was built from them
(a run's run_settings.json, a ranker directory, summary.json). No pandas import here (frames
come from the caller): the flags' help and checks that read this module stay fast.

>>> import pandas as pd
>>> frame = pd.DataFrame({"product_locale": ["us", "es", "jp", "us"]})
>>> parse_locales("US, jp"), canonical(["es", "es"]), parse_locales("")
(('jp', 'us'), ('es',), ())
>>> select_locales(frame, ("us",), "x.csv").index.tolist()
[0, 3]
>>> select_locales(frame.iloc[:2], ("jp",), "x.csv")
Traceback (most recent call last):
...
esci_tf.errors.FlagError: --locales=jp: no pairs of locale jp in x.csv (it has es, us)
"""

from esci_tf.errors import FlagError
from esci_tf.special_tokens import LOCALES

FLAG = "locales"
HELP = ("Comma list of locales (us, es, jp) whose pairs to use; empty: every locale. The files are read and "
        "checked whole, then only these locales' rows are kept (a given locale without rows is an error).")


def canonical(values) -> tuple:
    """Locales (comma text or a list) as a sorted tuple of distinct lower-case names; () when
    none (every locale)."""
    if isinstance(values, str):
        values = values.split(",")
    return tuple(sorted({str(v).strip().lower() for v in values or () if str(v).strip()}))


def parse_locales(values) -> tuple:
    """canonical(values), with FlagError naming the flag for a locale that is not an ESCI one."""
    chosen = canonical(values)
    unknown = [v for v in chosen if v not in LOCALES]
    if unknown:
        raise FlagError(f"--{FLAG}={','.join(chosen)}: unknown locale {unknown[0]!r}; expected a comma "
                        f"list of {', '.join(LOCALES)}")
    return tuple(chosen)


def keep_locales(frame, locales) -> tuple:
    """(the rows of `frame` in `locales`, how many were left out): for extra pairs (translations,
    unlabeled pairs) that may lack a locale; all rows when `locales` is empty."""
    if not locales:
        return frame, 0
    kept = frame["product_locale"].isin(locales).to_numpy()
    return frame[kept], int((~kept).sum())


def select_locales(frame, locales, source: str):
    """The rows of `frame` (product_locale column) in `locales` (all rows when empty); FlagError
    naming --locales and `source` (the file the rows came from) when one of them has no row."""
    if not locales:
        return frame
    present = set(frame["product_locale"].unique())
    missing = [locale for locale in locales if locale not in present]
    if missing:
        raise FlagError(f"--{FLAG}={','.join(locales)}: no pairs of locale {missing[0]} in {source} "
                        f"(it has {', '.join(sorted(map(str, present))) or 'no pairs'})")
    return frame[frame["product_locale"].isin(locales).to_numpy()]
