"""R/report.json and R/report.png: what each stage and member scores, and what each stage added.

Every number is an NDCG over the training pairs scored out of fold (each by a model that did
not train on it; BM25 and the zero-shot cosine train on nothing), per query with ESCI gains over
the whole list, then averaged over queries, with a 95% percentile bootstrap interval over
queries; overall, on the long lists (queries with at least --min_list_size pairs, like the
official test lists) and per locale. "Added" is a paired bootstrap of the per-query difference.
A stage trained on every pair (--distill_on=all, --pseudo_on=all) has no out-of-fold scores and
is listed without numbers. Distill and pseudo stages trained per fold learn from out-of-fold
probabilities of models that saw the other folds' labels, so their numbers lean optimistic.
Next to each stage's NDCG, the out-of-fold micro-F1 of tasks 2 and 3 by argmax; "decisions": the
rule saved in R/final/decisions.json and its micro-F1 (argmax, fitted on the same pairs, and
fitted on other queries: esci_tf.decisions.fit_decisions). "student" (--student_layers): the
distilled student's out-of-fold NDCG, its teacher's on the same queries, their paired difference
and the two bags' scoring speed (esci_tf.recipe.student).
"""

import os

import numpy as np
import pandas as pd
import tensorflow as tf

from esci_tf import decisions, files
from esci_tf.labels import GAINS, ranking_score
from esci_tf.recipe import ensemble_fit, fine_tune as tuning
from esci_tf.training.query_stats import bootstrap_interval, paired_delta, per_query_ndcg

REPORT_FILE = "report.json"
PLOT_FILE = "report.png"


def summaries(per_query: dict, long_queries: set, query_locale: dict, samples: int) -> dict:
    if not per_query:
        return {}
    result = {"all": bootstrap_interval(list(per_query.values()), num_samples=samples)}
    long = [v for q, v in per_query.items() if q in long_queries]
    if long:
        result["long_lists"] = bootstrap_interval(long, num_samples=samples)
    for locale in sorted(set(query_locale.values())):
        values = [v for q, v in per_query.items() if query_locale.get(q) == locale]
        if values:
            result[f"locale_{locale}"] = bootstrap_interval(values, num_samples=samples)
    return result


def _delta(a: dict, b: dict, long_queries: set, samples: int) -> dict:
    result = {"all": paired_delta(a, b, num_samples=samples)}
    long_a = {q: v for q, v in a.items() if q in long_queries}
    if set(long_a) & set(b):
        result["long_lists"] = paired_delta(long_a, b, num_samples=samples)
    return result


def oof_per_query(frame: pd.DataFrame, oof: pd.DataFrame, gains) -> tuple:
    """({query: NDCG} of out-of-fold probabilities over the pairs they score, [N, 4] probabilities
    in frame's order, the scored rows)."""
    probabilities = tuning.oof_probabilities(frame, oof)
    scored = ~np.isnan(probabilities).any(axis=1)
    query_ids = frame["query_id"].to_numpy()
    return per_query_ndcg(gains[scored], ranking_score(probabilities[scored]), query_ids[scored]), probabilities, scored


def student_entry(student: tuple, teacher: dict, long_queries: set, query_locale: dict, samples: int,
                  per_query: dict) -> dict:
    """The report's "student": its out-of-fold NDCG and its teacher's ({query: NDCG}) on the same
    queries, the paired difference, and what the student stage recorded (layers, speed)."""
    stage, model_set = student
    shared = {q: v for q, v in teacher.items() if q in per_query}
    outputs = stage.outputs
    return {"directory": stage.directory, "models": model_set.directories, "layers": outputs["layers"],
            "teacher_layers": outputs["teacher_layers"], "teacher": outputs["teacher"],
            "targets_from": outputs["targets_from"],
            "ndcg": summaries(per_query, long_queries, query_locale, samples),
            "teacher_ndcg": summaries(shared, long_queries, query_locale, samples),
            "student - teacher": _delta(per_query, teacher, long_queries, samples), "speed": outputs["speed"]}


def write_report(config, frame: pd.DataFrame, folds, stages: dict, ensemble_stage, timing: dict,
                 student: tuple | None = None) -> dict:
    """Compute the report, write R/report.json (and R/report.png with matplotlib); return it.
    `student`: the student stage's (Stage, ModelSet), when the run has one."""
    gains = GAINS[frame["label"].to_numpy()]
    query_ids = frame["query_id"].to_numpy()
    sizes = frame.groupby("query_id")["query_id"].transform("size").to_numpy()
    long_queries = set(query_ids[sizes >= config.min_list_size].tolist())
    query_locale = dict(zip(query_ids.tolist(), frame["product_locale"].tolist()))
    samples = config.bootstrap_samples
    per_query = {}
    stage_rows = {}
    for name, (stage, model_set) in stages.items():
        entry = {"models": model_set.directories, "settings": stage.settings}
        if model_set.oof is not None:
            per_query[name], probabilities, scored = oof_per_query(frame, model_set.oof, gains)
            entry["ndcg"] = summaries(per_query[name], long_queries, query_locale, samples)
            entry["scored_pairs"] = int(scored.sum())
            entry["micro_f1_argmax"] = decisions.task_micro_f1(probabilities[scored], frame["label"].to_numpy()[scored],
                                                               decisions.DecisionRule())
        else:
            entry["ndcg"] = "trained on every pair: no out-of-fold scores"
        stage_rows[name] = entry
    member_rows = {}
    scores_path = ensemble_stage.path("member_scores.csv")
    if tf.io.gfile.exists(scores_path):
        with tf.io.gfile.GFile(scores_path) as stream:
            member_scores = pd.read_csv(stream)
        for column in [c for c in member_scores.columns if c.startswith("score_")]:
            name = column[len("score_"):]
            values = member_scores[column].to_numpy()
            scored = ~np.isnan(values)
            per_query[f"member {name}"] = per_query_ndcg(gains[scored], values[scored], query_ids[scored])
            member_rows[name] = summaries(per_query[f"member {name}"], long_queries, query_locale, samples)
    added = {}
    names = [n for n in stages if n in per_query]
    for before, after in zip(names, names[1:]):
        added[f"{after} - {before}"] = _delta(per_query[after], per_query[before], long_queries, samples)
    for baseline in ("zero_shot", "bm25"):
        key = f"member {baseline}"
        if key in per_query and "folds" in per_query:
            added[f"folds - {baseline}"] = _delta(per_query["folds"], per_query[key], long_queries, samples)
    outputs = ensemble_stage.outputs
    report = {
        "recipe": {k: v for k, v in config.settings().items()},
        "data": {"pairs": int(len(frame)), "queries": int(frame["query_id"].nunique()),
                 "long_list_queries": len(long_queries), "folds": int(config.num_folds)},
        "stages": stage_rows, "members": member_rows, "added": added,
        "ensemble": {k: outputs.get(k) for k in ensemble_fit.OUTPUT_KEYS},
        "decisions": outputs.get("decisions"),
        "timing_seconds": timing,
    }
    if student is not None:
        teacher = per_query[student[0].outputs["targets_from"]]
        report["student"] = student_entry(student, teacher, long_queries, query_locale, samples,
                                          oof_per_query(frame, student[1].oof, gains)[0])
    files.write_json(os.path.join(config.output_dir, REPORT_FILE), report)
    plot(report, os.path.join(config.output_dir, PLOT_FILE))
    return report


def plot(report: dict, path: str) -> bool:
    """report.png: long-list NDCG per stage, member and the student with intervals, and what each stage
    (and the student against its teacher) added."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [(f"stage {n}", e["ndcg"].get("long_lists") or e["ndcg"].get("all"))
            for n, e in report["stages"].items() if isinstance(e["ndcg"], dict)]
    rows += [(f"member {n}", s.get("long_lists") or s.get("all")) for n, s in report["members"].items()]
    deltas = [(n, d.get("long_lists") or d["all"]) for n, d in report["added"].items()]
    student = report.get("student")
    if student:
        rows.append((f"student ({student['layers']} layers)", student["ndcg"].get("long_lists") or student["ndcg"]["all"]))
        delta = student["student - teacher"]
        deltas.append(("student - teacher", delta.get("long_lists") or delta["all"]))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.2))
    for axis, table, title in ((left, rows, "NDCG, long lists (95% CI)"), (right, deltas, "added (paired, 95% CI)")):
        names = [n for n, _ in table]
        means = np.array([s["mean"] for _, s in table]) if table else np.zeros(0)
        errors = np.array([[s["mean"] - s["low"] for _, s in table], [s["high"] - s["mean"] for _, s in table]]) \
            if table else np.zeros((2, 0))
        axis.barh(names, means, xerr=errors if table else None, capsize=3)
        axis.set_title(title)
        if axis is right:
            axis.axvline(0.0, color="black", linewidth=0.8)
        elif table:
            axis.set_xlim(max(0.0, float((means - errors[0]).min()) - 0.02), 1.0)
    fig.text(0.01, 0.01, "\n".join(_caption(report)), fontsize=8, va="bottom")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    with tf.io.gfile.GFile(path, "wb") as stream:
        fig.savefig(stream, format="png", dpi=110)
    plt.close(fig)
    return True


def _caption(report: dict) -> list:
    """The lines under the plot: stages without out-of-fold numbers, what R/final is, the minutes."""
    lines = []
    unscored = [n for n, e in report["stages"].items() if not isinstance(e["ndcg"], dict)]
    if unscored:
        lines.append(f"stages {', '.join(unscored)}: trained on every pair (no out-of-fold score; "
                     "what they add is measured by bench/quality.py's pipeline method)")
    ensemble = report["ensemble"]
    if ensemble.get("weights"):
        weights = "; ".join(f"{group}: " + ", ".join(f"{m} {w:g}" for m, w in members.items())
                            for group, members in ensemble["weights"].items())
        lines.append(f"{report.get('final', 'R/final')}: {ensemble.get('chosen') or 'ensemble'} ({weights})")
    decided = report.get("decisions")
    if decided:
        numbers = "; ".join(f"{task[:4]} {task[4:]} " + ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in
                                                                  decided["out_of_fold"][task].items())
                            for task in ("task2", "task3"))
        lines.append(f"micro-F1 out of fold (stage {decided['stage']}): {numbers}")
    student = report.get("student")
    if student:
        speed = student["speed"]
        lines.append(f"student ({student['layers']} of the teacher's {student['teacher_layers']} layers, "
                     f"{student['directory']}): {speed['ratio']:.2f}x the scoring speed of the teacher (stage "
                     f"{student['teacher']}) on CPU kind {speed['cpu_kind']}")
    timing = report.get("timing_seconds") or {}
    if timing:
        lines.append("minutes: " + ", ".join(f"{n} {s / 60:.1f}" for n, s in timing.items()))
    return lines
