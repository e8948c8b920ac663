"""`alarmbot eval`: triage on the held-out set, model vs. keyword baseline, as a report."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from routing.triage import POLICE, Decision

ROUTE_ORDER = ("police", "12345", "mediation")


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    route: str
    category: str
    aggression: bool | None = None
    call_110_now: bool | None = None
    source: str = ""


@dataclass
class Scores:
    """Accuracy, misroutes and per-class figures for one system on the cases."""

    name: str
    cases: Sequence[Case]
    decisions: Sequence[Decision]
    route_accuracy: float = 0.0
    category_accuracy: float = 0.0
    police_missed: list[tuple[Case, Decision]] = field(default_factory=list)
    misroutes: list[tuple[Case, Decision]] = field(default_factory=list)
    call_now_recall: float | None = None
    call_now_precision: float | None = None

    def __post_init__(self) -> None:
        total = len(self.cases) or 1
        pairs = list(zip(self.cases, self.decisions, strict=True))
        self.route_accuracy = sum(c.route == d.route for c, d in pairs) / total
        self.category_accuracy = sum(_full(c) == _full_d(d) for c, d in pairs) / total
        self.misroutes = [(c, d) for c, d in pairs if c.route != d.route]
        self.police_missed = [(c, d) for c, d in self.misroutes if c.route == POLICE]
        urgent = [(c, d) for c, d in pairs if c.call_110_now]
        if urgent:
            self.call_now_recall = sum(d.call_110_now for _, d in urgent) / len(urgent)
        flagged = [(c, d) for c, d in pairs if d.call_110_now]
        if flagged:
            self.call_now_precision = sum(bool(c.call_110_now) for c, _ in flagged) / len(flagged)


def _full(case: Case) -> str:
    return f"{case.route}/{case.category}"


def _full_d(decision: Decision) -> str:
    return f"{decision.route}/{decision.category}"


def load_cases(paths: Iterable[Path]) -> list[Case]:
    cases: list[Case] = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                cases.append(
                    Case(
                        id=str(raw["id"]),
                        text=str(raw["text"]),
                        route=str(raw["route"]),
                        category=str(raw["category"]),
                        aggression=raw.get("aggression"),
                        call_110_now=raw.get("call_110_now"),
                        source=path.name,
                    )
                )
            except (ValueError, KeyError) as exc:
                raise ValueError(f"{path}:{number}: not a held-out case ({exc})") from exc
    return cases


def per_class(
    truths: Sequence[str], predictions: Sequence[str]
) -> list[tuple[str, float, float, float, int]]:
    """(label, precision, recall, F1, support) for every label seen."""
    labels = sorted(set(truths) | set(predictions))
    rows = []
    for label in labels:
        tp = sum(t == p == label for t, p in zip(truths, predictions, strict=True))
        predicted = sum(p == label for p in predictions)
        support = sum(t == label for t in truths)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append((label, precision, recall, f1, support))
    return rows


def _confusion_png(
    truths: Sequence[str], predictions: Sequence[str], title: str, path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted(set(truths) | set(predictions))
    index = {label: i for i, label in enumerate(labels)}
    counts = Counter(zip(truths, predictions, strict=True))
    matrix = [[counts[(t, p)] for p in labels] for t in labels]
    size = max(4.0, 0.42 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("expected")
    ax.set_title(title)
    for (t, p), n in counts.items():
        ax.text(index[p], index[t], str(n), ha="center", va="center", fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


SET_DESCRIPTIONS = {
    "heldout": ("held-out set", "never used in training"),
    "dev": ("development sets", "used to tune the rules, never used in training"),
}


def write_report(model: Scores, baseline: Scores, out_dir: Path, set_name: str = "heldout") -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    truths_route = [c.route for c in model.cases]
    truths_cat = [_full(c) for c in model.cases]
    for scores, tag in ((model, "model"), (baseline, "keywords")):
        _confusion_png(
            truths_route,
            [d.route for d in scores.decisions],
            f"route ({tag})",
            out_dir / f"triage_route_{tag}.png",
        )
    _confusion_png(
        truths_cat,
        [_full_d(d) for d in model.decisions],
        "category (model)",
        out_dir / "triage_category_model.png",
    )
    lines = [
        f"# Triage evaluation ({SET_DESCRIPTIONS[set_name][0]})",
        "",
        f"{len(model.cases)} cases from tests/data/{set_name}_*.jsonl, "
        f"{SET_DESCRIPTIONS[set_name][1]}.",
        "",
        "| | model + rules | keywords only |",
        "|---|---|---|",
        f"| route accuracy | {model.route_accuracy:.1%} | {baseline.route_accuracy:.1%} |",
        f"| category accuracy | {model.category_accuracy:.1%} | {baseline.category_accuracy:.1%} |",
        f"| police cases sent elsewhere | {len(model.police_missed)} | {len(baseline.police_missed)} |",
        f"| call-110-now recall | {_pct(model.call_now_recall)} | {_pct(baseline.call_now_recall)} |",
        f"| call-110-now precision | {_pct(model.call_now_precision)} | "
        f"{_pct(baseline.call_now_precision)} |",
        "",
        "Targets: route ≥95%, zero police cases routed elsewhere, category ≥85%.",
        "",
        "## Per file (model + rules)",
        "",
        "| file | cases | route | category | police sent elsewhere | call-110-now recall |",
        "|---|---|---|---|---|---|",
        *_per_file_rows(model),
        "",
        "![route, model](triage_route_model.png) ![route, keywords](triage_route_keywords.png)",
        "",
        "![category, model](triage_category_model.png)",
        "",
        "## Per category (model + rules)",
        "",
        "| category | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for label, p, r, f1, n in per_class(truths_cat, [_full_d(d) for d in model.decisions]):
        lines.append(f"| {label} | {p:.2f} | {r:.2f} | {f1:.2f} | {n} |")
    lines += ["", "## Every misroute (model + rules)", ""]
    if not model.misroutes:
        lines.append("None.")
    for case, decision in model.misroutes:
        lines.append(
            f"- `{case.id}` expected {case.route}/{case.category}, got "
            f"{decision.route}/{decision.category}: {case.text[:80]} — "
            + "；".join(decision.reasons)
        )
    lines += ["", "## Wrong category, right route (model + rules)", ""]
    for case, decision in zip(model.cases, model.decisions, strict=True):
        if case.route == decision.route and case.category != decision.category:
            lines.append(
                f"- `{case.id}` {case.route}: expected {case.category}, got "
                f"{decision.category}: {case.text[:60]}"
            )
    path = out_dir / "triage.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _per_file_rows(scores: Scores) -> list[str]:
    """One table row per source file: the sets were written by different hands, and a
    figure over all of them hides the one set a change made worse."""
    rows = []
    sources = dict.fromkeys(case.source for case in scores.cases)
    for source in sources:
        picked = [i for i, case in enumerate(scores.cases) if case.source == source]
        part = Scores(
            source,
            [scores.cases[i] for i in picked],
            [scores.decisions[i] for i in picked],
        )
        rows.append(
            f"| {source} | {len(picked)} | {part.route_accuracy:.1%} | "
            f"{part.category_accuracy:.1%} | {len(part.police_missed)} | "
            f"{_pct(part.call_now_recall)} |"
        )
    return rows


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def summary(scores: Scores) -> str:
    return (
        f"{scores.name}: route {scores.route_accuracy:.1%}, category "
        f"{scores.category_accuracy:.1%}, police sent elsewhere {len(scores.police_missed)}, "
        f"call-110-now recall {_pct(scores.call_now_recall)}, "
        f"precision {_pct(scores.call_now_precision)}"
    )
