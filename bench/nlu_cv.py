"""K-fold cross-validation of the NLU model plus triage rules on the training data.

Why: the held-out set is small and must not steer the training data; k-fold over data/nlu
(stratified by intent) shows which report categories the model confuses, on text it has
not seen, without touching tests/data.

    PYTHONPATH=. python bench/nlu_cv.py --folds 4 [--epochs 40] [--out reports/nlu_cv.md]

Each fold trains an NLU-only model (same config.yml pipeline) on k-1 parts and triages the
held-back part with `routing.triage`; report intents are scored as route and route/category.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import yaml

PROJECT_DIR = Path(__file__).resolve().parents[1]


def _folds(examples: list, k: int, seed: int) -> list[list]:
    """Stratified by intent: each intent's examples dealt round-robin after a shuffle."""
    by_intent: dict[str, list] = defaultdict(list)
    for example in examples:
        by_intent[example.get("intent")].append(example)
    folds: list[list] = [[] for _ in range(k)]
    rng = random.Random(seed)
    for intent in sorted(by_intent):
        items = by_intent[intent]
        rng.shuffle(items)
        for index, item in enumerate(items):
            folds[index % k].append(item)
    return folds


def _config(epochs: int | None, scratch: Path) -> Path:
    config = yaml.safe_load((PROJECT_DIR / "config.yml").read_text(encoding="utf-8"))
    for component in config["pipeline"]:
        if component["name"].endswith("JiebaTokenizer"):
            component["dictionary_path"] = str(PROJECT_DIR / component["dictionary_path"])
        if component["name"] == "DIETClassifier" and epochs:
            component["epochs"] = epochs
    config.pop("policies", None)
    path = scratch / "config.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


async def _triage_fold(
    model_path: str, tests: list, dump: list[dict] | None = None
) -> list[tuple[str, str, str, str]]:
    """(gold intent, predicted intent, triage route/category, text) per held-back example;
    the raw parses go to `dump` so that thresholds can be replayed without retraining."""
    from rasa.core.agent import Agent

    from nlu.text import normalise
    from routing.triage import ModelReading, triage

    agent = Agent.load(model_path)
    rows = []
    for example in tests:
        text = normalise(example.get("text"))
        parse = await agent.parse_message(text)
        decision = triage(text, reading=ModelReading.from_parse(parse))
        if dump is not None:
            dump.append(
                {
                    "intent": example.get("intent"),
                    "text": text,
                    "intent_ranking": parse.get("intent_ranking"),
                    "entities": [
                        {k: e.get(k) for k in ("entity", "value", "start", "end", "extractor")}
                        for e in parse.get("entities") or ()
                    ],
                }
            )
        rows.append(
            (
                example.get("intent"),
                parse["intent"]["name"],
                f"{decision.route}/{decision.category}",
                example.get("text"),
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=None, help="override DIET epochs")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default="reports/nlu_cv.md")
    parser.add_argument("--dump", help="also write every parse as JSON lines to this file")
    parser.add_argument(
        "--replay",
        help="no training: re-triage the parses in a --dump file with the current policy",
    )
    args = parser.parse_args(argv)

    from rasa.model_training import train_nlu
    from rasa.shared.nlu.training_data.loading import load_data
    from rasa.shared.nlu.training_data.training_data import TrainingData

    from routing.triage import default_policy

    policy = default_policy()
    if args.replay:
        rows = _replay(Path(args.replay))
        print(_report(rows, policy).split("\n## ")[0])
        return 0
    data = load_data(str(PROJECT_DIR / "data" / "nlu"))
    folds = _folds(list(data.intent_examples), args.folds, args.seed)
    rows: list[tuple[str, str, str, str]] = []
    dump: list[dict] | None = [] if args.dump else None
    with tempfile.TemporaryDirectory(prefix="nlu-cv-") as tmp:
        scratch = Path(tmp)
        config = _config(args.epochs, scratch)
        for index, held in enumerate(folds):
            train = [e for j, fold in enumerate(folds) if j != index for e in fold]
            subset = TrainingData(
                training_examples=train,
                entity_synonyms=data.entity_synonyms,
                regex_features=data.regex_features,
                lookup_tables=data.lookup_tables,
            )
            nlu_file = scratch / f"train_{index}.yml"
            nlu_file.write_text(subset.nlu_as_yaml(), encoding="utf-8")
            model = train_nlu(
                str(config),
                str(nlu_file),
                str(scratch),
                fixed_model_name=f"fold{index}",
                domain=str(PROJECT_DIR / "domain.yml"),
            )
            if not model:
                print(f"fold {index}: training failed", file=sys.stderr)
                return 1
            rows += asyncio.run(_triage_fold(model, held, dump))
            print(f"fold {index + 1}/{args.folds} done", file=sys.stderr, flush=True)

    if dump is not None:
        lines = (json.dumps(item, ensure_ascii=False) for item in dump)
        Path(args.dump).write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = _report(rows, policy)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report, encoding="utf-8")
    print(report.split("\n## ")[0])
    return 0


def _replay(dump: Path) -> list[tuple[str, str, str, str]]:
    from routing.triage import ModelReading, triage

    rows = []
    for line in dump.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        decision = triage(item["text"], reading=ModelReading.from_parse(item))
        top = (item["intent_ranking"] or [{"name": None}])[0]["name"]
        rows.append((item["intent"], top, f"{decision.route}/{decision.category}", item["text"]))
    return rows


def _report(rows: list[tuple[str, str, str, str]], policy) -> str:  # noqa: ANN001
    report_rows = []
    for gold, predicted, decided, text in rows:
        routed = policy.route_of(gold)
        if routed is not None:
            report_rows.append((f"{routed[0]}/{routed[1]}", gold, predicted, decided, text))
    total = len(rows) or 1
    intent_ok = sum(g == p for g, p, _, _ in rows) / total
    n = len(report_rows) or 1
    route_ok = sum(g.split("/")[0] == d.split("/")[0] for g, _, _, d, _ in report_rows) / n
    cat_ok = sum(g == d for g, _, _, d, _ in report_rows) / n
    police_elsewhere = [
        r for r in report_rows if r[0].startswith("police/") and not r[3].startswith("police/")
    ]
    lines = [
        "# NLU cross-validation",
        "",
        f"- examples: {len(rows)} (report intents: {len(report_rows)})",
        f"- intent accuracy (all intents): {intent_ok:.1%}",
        f"- triage route accuracy (report intents): {route_ok:.1%}",
        f"- triage category accuracy (report intents): {cat_ok:.1%}",
        f"- police examples routed elsewhere: {len(police_elsewhere)}",
        "",
        "## Per category (triage)",
        "",
        "| category | n | correct | recall |",
        "|---|---|---|---|",
    ]
    per: Counter[str] = Counter()
    good: Counter[str] = Counter()
    confusions: Counter[tuple[str, str]] = Counter()
    for gold, _, _, decided, _ in report_rows:
        per[gold] += 1
        good[gold] += gold == decided
        if gold != decided:
            confusions[(gold, decided)] += 1
    for cat in sorted(per, key=lambda c: good[c] / per[c]):
        lines.append(f"| {cat} | {per[cat]} | {good[cat]} | {good[cat] / per[cat]:.0%} |")
    lines += ["", "## Top confusions", ""]
    lines += [f"- {g} → {d}: {c}" for (g, d), c in confusions.most_common(30)]
    lines += ["", "## Misrouted (route wrong)", ""]
    lines += [
        f"- {g} → {d}: {t}" for g, _, _, d, t in report_rows if g.split("/")[0] != d.split("/")[0]
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
