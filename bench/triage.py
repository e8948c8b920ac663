"""Triage latency and throughput: trained model + rules vs. the keyword-only baseline.

Both run in one process on the held-out texts (tests/data/heldout_*.jsonl): per-message
latency p50/p95/p99 one at a time, then throughput over the whole batch. The model path
includes text normalisation and one Rasa NLU parse; the baseline only the rules.
Targets (issue): p50 ≤ 15 ms, p99 ≤ 40 ms for the model path.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from chat_latency import percentile  # noqa: E402  (bench/ is this script's own folder)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="passes over the held-out texts")
    args = parser.parse_args()

    from bot.cli import quiet_third_parties

    quiet_third_parties()
    from bot.evaluation import load_cases
    from bot.model import train_if_needed
    from bot.observability import configure_logging
    from bot.triage_service import TriageService, keyword_decision

    configure_logging("WARNING")
    texts = [
        c.text for c in load_cases(sorted((PROJECT_DIR / "tests/data").glob("heldout_*.jsonl")))
    ]
    model_path, _ = train_if_needed(PROJECT_DIR, PROJECT_DIR / "models")
    started = time.perf_counter()
    service = TriageService.load(model_path)
    load_s = time.perf_counter() - started
    for text in texts[:20]:
        await service.decide(text)

    rows = {}
    for name, decide in (
        ("model + rules", service.decide),
        ("keywords only", None),
    ):
        latencies: list[float] = []
        batch_started = time.perf_counter()
        for _ in range(args.rounds):
            for text in texts:
                t = time.perf_counter()
                if decide is None:
                    keyword_decision(text)
                else:
                    await decide(text)
                latencies.append((time.perf_counter() - t) * 1000)
        elapsed = time.perf_counter() - batch_started
        rows[name] = (
            statistics.median(latencies),
            percentile(latencies, 95),
            percentile(latencies, 99),
            len(latencies) / elapsed,
        )

    print(
        f"triage on {len(texts)} held-out texts x{args.rounds}, {os.cpu_count()} CPUs; "
        f"model load {load_s:.1f} s, RSS {rss_mb():.0f} MB"
    )
    print(f"{'':22}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'msg/s':>10}")
    for name, (p50, p95, p99, rate) in rows.items():
        print(f"{name:22}{p50:9.2f}{p95:9.2f}{p99:9.2f}{rate:10.0f}")
    p50, _, p99, _ = rows["model + rules"]
    print(f"[{'PASS' if p50 <= 15 else 'MISS'}] p50 ≤ 15 ms: {p50:.1f} ms")
    print(f"[{'PASS' if p99 <= 40 else 'MISS'}] p99 ≤ 40 ms: {p99:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
