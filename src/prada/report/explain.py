"""`prada explain`: how domain-separable are the student's question features, before and after training?

For the run's adversary layer, each test question's hidden states are mean-pooled over its real
tokens (exactly the feature the domain head sees), once with the trained student and once with the
untrained base model. On both feature sets we report:

- a fresh logistic-regression probe's 5-fold cross-validated domain accuracy (vs the majority rate),
- the proxy A-distance PAD = 2(1 - 2·err) of a linear classifier separating each pair of domains
  (cross-validated error; 0 = indistinguishable, 2 = perfectly separable),
- a 2-D PCA scatter coloured by domain (trained and untrained side by side),

plus, per domain, a few of the student's rationales beside the teacher's. Writes RUN_DIR/explain/.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from prada.config import RunConfig
from prada.data.registry import ordered_domains
from prada.data.schema import Example
from prada.errors import PradaError
from prada.io import atomic_write_json, atomic_write_text, folder_lock, read_jsonl_tolerant, refuse_links
from prada.progress import hidden as bar_hidden
from prada.run_dir import EXPLAIN, EXPLAIN_JSON, PREDICTIONS

N_SAMPLES = 3


# --- features ---------------------------------------------------------------------------------------------


@torch.no_grad()
def layer_features(
    student,
    tokenizer,
    examples: list[Example],
    layers: list[int],
    max_length: int,
    batch_size: int = 16,
    pad_multiple: int = 16,
    desc: str = "features",
    progress: bool = True,
) -> dict[int, np.ndarray]:
    """Pooled question features at several layers from one pass each batch: (N,) examples -> layer -> (N, H)
    float32, the mean over each question's real tokens (virtual tokens and padding excluded)."""
    from prada.distill.collate import build_question_items, collate
    from prada.methods.adversary import pool_question

    domains = sorted({e.domain for e in examples})
    items = build_question_items(examples, tokenizer, domains, max_length)
    order = sorted(range(len(items)), key=lambda i: len(items[i].prompt_ids))  # similar lengths share a batch
    device = next(student.parameters()).device
    chunks = []
    for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=bar_hidden(progress), leave=False):
        idx = order[start : start + batch_size]
        batch = collate([items[i] for i in idx], tokenizer.pad_token_id, pad_multiple, with_labels=False).to(device)
        if len(layers) == 1:
            states = {layers[0]: student.layer_states(batch, layers[0])}  # (B, T, H), stops at that layer
        else:
            hidden = student.hidden_states(batch)
            states = {layer: hidden[layer] for layer in layers}
        chunks.append(
            (idx, {k: pool_question(h.float(), batch.question_mask).cpu().numpy() for k, h in states.items()})
        )  # (B, H) each
    out = {}
    for layer in layers:
        dim = chunks[0][1][layer].shape[1] if chunks else 0
        out[layer] = np.zeros((len(items), dim), dtype=np.float32)
        for idx, feats in chunks:
            out[layer][idx] = feats[layer]
    return out


# --- probes -------------------------------------------------------------------------------------------------


def _classifier():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def _cv_accuracy(X: np.ndarray, y: np.ndarray, folds: int, seed: int) -> tuple[float, int] | None:
    """Mean cross-validated accuracy and the number of folds used; None when a class has < 2 items."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    counts = np.bincount(y)
    counts = counts[counts > 0]
    k = min(folds, int(counts.min())) if len(counts) > 1 else 0
    if k < 2:
        return None
    scores = cross_val_score(_classifier(), X, y, cv=StratifiedKFold(k, shuffle=True, random_state=seed))
    return float(scores.mean()), k


def domain_probe(X: np.ndarray, labels: list[str], folds: int = 5, seed: int = 0) -> dict | None:
    """K-way domain probe: cross-validated accuracy in [0, 1] and the majority-class rate to compare with."""
    names = sorted(set(labels))
    y = np.array([names.index(d) for d in labels])
    res = _cv_accuracy(X, y, folds, seed)
    if res is None:
        return None
    return {"accuracy": round(res[0], 4), "chance": round(float(np.bincount(y).max() / len(y)), 4), "folds": res[1]}


def proxy_a_distances(X: np.ndarray, labels: list[str], folds: int = 5, seed: int = 0) -> dict[str, float]:
    """PAD = 2(1 - 2·err) for each domain pair `a|b`, err = cross-validated error of a linear classifier; in [-2, 2]."""
    out = {}
    for a, b in itertools.combinations(sorted(set(labels)), 2):
        keep = np.array([d in (a, b) for d in labels])
        y = np.array([int(d == b) for d, k in zip(labels, keep) if k])
        res = _cv_accuracy(X[keep], y, folds, seed)
        if res is not None:
            out[f"{a}|{b}"] = round(2.0 * (1.0 - 2.0 * (1.0 - res[0])), 4)
    return out


PCA_DIMS = (2, 8)
CURVE_FRACTIONS = (0.1, 0.25, 0.5, 1.0)


def limited_probe(X: np.ndarray, labels: list[str], dims: int, folds: int = 5, seed: int = 0) -> float | None:
    """Domain probe on a fixed PCA-`dims` projection (fit on the probe's training folds only).

    With 576-dim features and fewer questions than dimensions a full linear probe separates any
    labelling; a few directions measure whether the domains differ along the features' main axes.
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    names = sorted(set(labels))
    y = np.array([names.index(d) for d in labels])
    counts = np.bincount(y)
    k = min(folds, int(counts[counts > 0].min())) if len(names) > 1 else 0
    if k < 2 or min(dims, X.shape[1]) < 1:
        return None
    pipe = make_pipeline(
        StandardScaler(), PCA(n_components=min(dims, X.shape[1]), random_state=seed), LogisticRegression(max_iter=2000)
    )
    return round(float(cross_val_score(pipe, X, y, cv=StratifiedKFold(k, shuffle=True, random_state=seed)).mean()), 4)


def learning_curve(X: np.ndarray, labels: list[str], seed: int = 0) -> dict[str, float]:
    """Held-out probe accuracy when it trains on a fraction of the other questions (half held out, stratified)."""
    from sklearn.model_selection import train_test_split

    names = sorted(set(labels))
    y = np.array([names.index(d) for d in labels])
    if len(names) < 2 or np.bincount(y).min() < 4:
        return {}
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.5, stratify=y, random_state=seed)
    rng = np.random.default_rng(seed)
    out = {}
    for frac in CURVE_FRACTIONS:
        n = max(len(names) * 2, int(round(frac * len(y_tr))))
        pick = rng.permutation(len(y_tr))[:n]
        if len(set(y_tr[pick])) < 2:
            continue
        out[str(frac)] = round(float(_classifier().fit(X_tr[pick], y_tr[pick]).score(X_te, y_te)), 4)
    return out


def analyse(X: np.ndarray, labels: list[str], seed: int = 0, targets: set[str] | None = None) -> dict:
    pad = proxy_a_distances(X, labels, seed=seed)
    targets = targets or set()
    cross = {k: v for k, v in pad.items() if len(set(k.split("|")) & targets) == 1}  # one source, one target
    return {
        "probe": domain_probe(X, labels, seed=seed),
        "probe_pca": {str(d): limited_probe(X, labels, d, seed=seed) for d in PCA_DIMS},
        "learning_curve": learning_curve(X, labels, seed),
        "pad": pad,
        "pad_mean": round(float(np.mean(list(pad.values()))), 4) if pad else None,
        "pad_source_target": cross,
        "pad_source_target_mean": round(float(np.mean(list(cross.values()))), 4) if cross else None,
    }


# --- plot ---------------------------------------------------------------------------------------------------


def plot_features(panels: dict[str, np.ndarray], labels: list[str], targets: set[str], path: Path) -> Path:
    """Side-by-side 2-D PCA scatters, one per feature set, coloured by domain (target domains marked x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    from prada.report.plots import save_figure

    domains = sorted(set(labels))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.6), squeeze=False)
    for ax, (title, X) in zip(axes[0], panels.items()):
        xy = PCA(n_components=2, random_state=0).fit_transform(X) if len(X) > 2 else np.zeros((len(X), 2))
        for i, d in enumerate(domains):
            m = np.array([lab == d for lab in labels])
            ax.scatter(
                xy[m, 0],
                xy[m, 1],
                s=14,
                alpha=0.7,
                color=f"C{i}",
                marker="x" if d in targets else "o",
                label=f"{d} (target)" if d in targets else d,
            )
        ax.set_title(title)
        ax.set_xlabel("PC1")
        ax.set_ylabel("PC2")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("pooled question features, 2-D PCA")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


# --- data ---------------------------------------------------------------------------------------------------


def _test_examples(
    cfg: RunConfig, data: str | None, max_per_dataset: int
) -> tuple[list[Example], dict[tuple[str, str], Example]]:
    """(capped examples to featurise, every test example by (dataset, id) for the rationale lookup)."""
    if data is None:
        from prada.distill.dataset import load_distillation_set

        tests = load_distillation_set(dataclasses.replace(cfg.data, max_test_per_dataset=0), cfg.seed).test_sets
    else:
        from prada.evaluation.evaluate import load_test_sets

        tests = load_test_sets(cfg, data, "test")
    by_id = {(ds, ex.id): ex for ds, exs in tests.items() for ex in exs}
    chosen = []
    for exs in tests.values():
        if max_per_dataset and len(exs) > max_per_dataset:
            rng = random.Random(cfg.seed)
            exs = sorted(rng.sample(exs, max_per_dataset), key=exs.index)
        chosen += exs
    return chosen, by_id


def _samples(run_dir: Path, by_id: dict[tuple[str, str], Example], domains: list[str]) -> dict[str, list[dict]]:
    """Per domain, up to N_SAMPLES student outputs (from predictions.jsonl) beside the teacher's rationale."""
    preds = read_jsonl_tolerant(run_dir / PREDICTIONS)
    out: dict[str, list[dict]] = {}
    for d in domains:
        rows = [p for p in preds if p.get("domain") == d][:N_SAMPLES]
        if not rows:  # no evaluation yet: show the teacher side only
            rows = [
                {"dataset": e.dataset, "id": e.id, "domain": d, "question": e.question, "answer": e.answer}
                for (ds, _), e in by_id.items()
                if e.domain == d
            ][:N_SAMPLES]
        samples = []
        for p in rows:
            ex = by_id.get((p["dataset"], p["id"]))
            teacher = ex.rationales[0] if ex is not None and ex.rationales else None
            samples.append(
                {
                    "dataset": p["dataset"],
                    "id": p["id"],
                    "question": p["question"],
                    "answer": p["answer"],
                    "student": p.get("output"),
                    "student_prediction": p.get("prediction"),
                    "student_correct": p.get("correct"),
                    "teacher": teacher.text if teacher else None,
                    "teacher_answer": teacher.answer if teacher else None,
                }
            )
        out[d] = samples
    return out


# --- entry point --------------------------------------------------------------------------------------------


def explain_run(
    run_dir: Path, data: str | None = None, max_per_dataset: int = 64, batch_size: int = 16, progress: bool = True
) -> Path:
    """Write RUN_DIR/explain/{explain.json, explain.md, features_pca.png}; returns that folder.

    `data` (DATA_DIR or FILE.jsonl) replaces the run's own test sets; `max_per_dataset` caps the
    questions featurised per dataset (features are cheap; the probes want a few dozen per domain).
    The run folder is locked meanwhile, as for `prada eval`: a `prada train --resume` on it waits its turn.
    """
    with folder_lock(run_dir, f"prada explain --run {run_dir}", create=False):
        return _explain_run(Path(run_dir), data, max_per_dataset, batch_size, progress)


def _explain_run(run_dir: Path, data: str | None, max_per_dataset: int, batch_size: int, progress: bool) -> Path:
    from prada.model_aliases import resolve_model
    from prada.run_dir import finished_run_config
    from prada.train.backbones import load_causal_lm, load_tokenizer
    from prada.train.student import Student, load_student

    cfg = finished_run_config(run_dir)
    if data is None:
        from prada.distill.dataset import prepare_data

        prepare_data(cfg.data)  # the data step (built once if missing); loading below only reads
    examples, by_id = _test_examples(cfg, data, max_per_dataset)
    if not examples:
        raise PradaError(f"--run {run_dir}: no test questions to analyse")
    labels = [e.domain for e in examples]
    present = set(labels)
    domains = ordered_domains(present)
    targets = set(cfg.data.target_domains)
    layer, max_len = cfg.adversary.layer, cfg.student.max_length
    torch.manual_seed(cfg.seed)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    trained, tokenizer = load_student(run_dir, cfg)
    trained.to(device)
    n_layers = trained.lm.config.num_hidden_layers
    layers = sorted({layer % (n_layers + 1), n_layers // 2, n_layers})  # the adversary's, the middle, the top
    by_layer = {
        "trained": layer_features(
            trained, tokenizer, examples, layers, max_len, batch_size, desc="features (trained)", progress=progress
        )
    }
    del trained
    base_path = resolve_model(cfg.student.model)
    untrained = Student(load_causal_lm(base_path, cfg.student.trust_remote_code)).eval().to(device)
    base_tok = load_tokenizer(base_path, cfg.student.trust_remote_code)
    by_layer["untrained"] = layer_features(
        untrained, base_tok, examples, layers, max_len, batch_size, desc="features (untrained)", progress=progress
    )
    del untrained
    feature_layer = layer % (n_layers + 1)
    feats = {side: by_layer[side][feature_layer] for side in by_layer}

    out = run_dir / EXPLAIN
    refuse_links(out)  # a received run folder's explain/ may link elsewhere
    out.mkdir(parents=True, exist_ok=True)
    plot_features(
        {f"{cfg.method} (trained)": feats["trained"], "untrained base student": feats["untrained"]},
        labels,
        targets,
        out / "features_pca.png",
    )
    result = {
        "run": str(run_dir),
        "method": cfg.method,
        "layer": layer,
        "domains": domains,
        "source_domains": [d for d in domains if d not in targets],
        "target_domains": [d for d in domains if d in targets],
        "n_questions": {d: labels.count(d) for d in domains},
        "feature_layer": feature_layer,
        "trained": analyse(feats["trained"], labels, cfg.seed, targets),
        "untrained": analyse(feats["untrained"], labels, cfg.seed, targets),
        "layers": {
            str(k): {side: analyse(by_layer[side][k], labels, cfg.seed, targets) for side in by_layer}
            for k in layers
            if k != feature_layer
        },
        "plot": "features_pca.png",
        "samples": _samples(run_dir, by_id, domains),
    }
    atomic_write_text(out / "explain.md", render_explain(result))
    atomic_write_json(run_dir / EXPLAIN_JSON, result)  # last: its presence marks explain as done
    return out


def _num(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def _clip(text: str | None, n: int = 400) -> str:
    if not text:
        return "–"
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= n else text[: n - 1] + "…"


def render_explain(r: dict) -> str:
    """explain.md: probe and PAD tables, the scatter plot, and sample rationales."""
    t, u = r["trained"], r["untrained"]
    probe = lambda side: side["probe"] or {}  # noqa: E731
    lines = [
        f"# Domain alignment: `{Path(r['run']).name}` ({r['method']})",
        "",
        f"Features: hidden states at layer {r['layer']}, mean over each question's real tokens "
        f"(the adversary's input), for {sum(r['n_questions'].values())} test questions "
        f"({', '.join(f'{d}: {n}' for d, n in r['n_questions'].items())}). Target domains: {', '.join(r['target_domains']) or 'none'}.",
        "",
        "## Domain probe (5-fold cross-validated logistic regression)",
        "",
        "| features | probe accuracy | majority rate | mean PAD |",
        "|---|---|---|---|",
        f"| trained | {_num(probe(t).get('accuracy'))} | {_num(probe(t).get('chance'))} | {_num(t['pad_mean'])} |",
        f"| untrained | {_num(probe(u).get('accuracy'))} | {_num(probe(u).get('chance'))} | {_num(u['pad_mean'])} |",
        "",
        "Lower probe accuracy (towards the majority rate) and lower PAD mean the trained features carry less domain "
        "information. The control for the adversary is not the untrained model but the same-seed run without it "
        "(prada vs ptune, dann vs ft-cot): the experiment report puts them side by side.",
        "",
        "## Capacity-limited probes and learning curve",
        "",
        "A full linear probe on features with more dimensions than questions separates almost any labelling, so "
        "these have the dynamic range: the same probe on a PCA-k projection (fit inside each training fold), and "
        "the held-out accuracy of the full probe trained on a fraction of half the questions.",
        "",
        "| features | "
        + " | ".join(f"PCA-{k}" for k in t.get("probe_pca", {}))
        + " | "
        + " | ".join(f"curve {f}" for f in t.get("learning_curve", {}))
        + " |",
        "|---|" + "---|" * (len(t.get("probe_pca", {})) + len(t.get("learning_curve", {}))),
        *(
            f"| {name} | "
            + " | ".join(_num(v) for v in side.get("probe_pca", {}).values())
            + " | "
            + " | ".join(_num(side.get("learning_curve", {}).get(f)) for f in t.get("learning_curve", {}))
            + " |"
            for name, side in (("trained", t), ("untrained", u))
        ),
        "",
        f"Mean PAD over source-target pairs only: trained {_num(t.get('pad_source_target_mean'))}, "
        f"untrained {_num(u.get('pad_source_target_mean'))}.",
        "",
        "## Other layers (trained / untrained)",
        "",
        "| layer | probe acc | PCA-2 probe | mean source-target PAD |",
        "|---|---|---|---|",
        *(
            f"| {k} | {_num(probe(v['trained']).get('accuracy'))} / {_num(probe(v['untrained']).get('accuracy'))} | "
            f"{_num(v['trained'].get('probe_pca', {}).get('2'))} / {_num(v['untrained'].get('probe_pca', {}).get('2'))} | "
            f"{_num(v['trained'].get('pad_source_target_mean'))} / {_num(v['untrained'].get('pad_source_target_mean'))} |"
            for k, v in r.get("layers", {}).items()
        ),
        "",
        "## Proxy A-distance per domain pair (2(1-2·err); 0 = indistinguishable, 2 = separable)",
        "",
        "| pair | trained | untrained |",
        "|---|---|---|",
        *(
            f"| {pair.replace('|', ' vs ')} | {_num(t['pad'].get(pair))} | {_num(u['pad'].get(pair))} |"
            for pair in sorted(set(t["pad"]) | set(u["pad"]))
        ),
        "",
        f"![features]({r['plot']})",
        "",
        "## Sample rationales (student vs teacher)",
    ]
    for d, samples in r["samples"].items():
        lines += ["", f"### {d}{' (target)' if d in r['target_domains'] else ''}", ""]
        for s in samples:
            mark = {True: "correct", False: "wrong", None: "not evaluated"}[s["student_correct"]]
            lines += [
                f"- **{s['dataset']} `{s['id']}`** — {_clip(s['question'], 300)} (gold: {s['answer']})",
                f"  - student ({mark}, predicted {s['student_prediction'] or 'nothing'}): {_clip(s['student'])}",
                f"  - teacher: {_clip(s['teacher'])}",
            ]
    return "\n".join(lines) + "\n"
