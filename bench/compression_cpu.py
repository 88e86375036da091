"""Compression on this CPU: every CPU method on a digits MLP, as ratios to the original.

    python bench/compression_cpu.py [--threads 1] [--batch 64] [--compile]

A 64-512-256-10 MLP trained on scikit-learn's digits (1,197 training, 600 evaluation samples),
then `steward.compress.runner.run` with every method; printed: size and p50 speed-up against
the original measured in the same run, accuracy and the gate's verdict (maxAccuracyDrop 0.01,
maxLatencyRatio 1.0). ``--compile`` times every model ``torch.compile``d (the original too),
as ``evaluation.compile`` does.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from sklearn import datasets
from torch import nn

from steward.api.v1alpha1.compressionjob import CompressionMethod, Gate
from steward.compress.data import Dataset
from steward.compress.measure import Timing
from steward.compress.runner import Request, run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--compile", action="store_true", help="time torch.compile'd models")
    args = parser.parse_args()
    loaded = datasets.load_digits()
    x = torch.tensor(loaded.data, dtype=torch.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    y = torch.tensor(loaded.target)
    test = torch.arange(len(y)) % 3 == 0
    train, evaluation = Dataset(x[~test], y[~test]), Dataset(x[test], y[test])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                          nn.Linear(256, 10))  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        for batch in torch.randperm(len(train)).split(64):
            loss = nn.functional.cross_entropy(model(train.inputs[batch]), train.labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    options = {"pruneFraction": 0.5, "fineTuneEpochs": 5, "distillEpochs": 40}
    with tempfile.TemporaryDirectory() as out:
        report = run(Request(model=model, methods=list(CompressionMethod), evaluation=evaluation,
                             gate=Gate(), min_samples=500, output=Path(out), train=train,
                             timing=Timing(batch_sizes=(1, args.batch), iterations=50,
                                           threads=args.threads, compile=args.compile),
                             options=options))  # fmt: skip
    original = report["variants"][0]
    print(f"| variant | size vs original | p50 speed-up (batch {args.batch}) | accuracy | "
          "passed / why not |\n|---|---|---|---|---|")  # fmt: skip
    for row in report["variants"]:
        if row["sizeBytes"] == 0:
            print(f"| {row['name']} | - | - | - | {row['reasons'][0]} |")
            continue
        size = row["sizeBytes"] / original["sizeBytes"]
        speed = original["latencyP50Ms"] / row["latencyP50Ms"]
        verdict = "yes" if row["passed"] else row["reasons"][0]
        if row["compiled"] is False:
            verdict += " (timed eagerly: compiling failed)"
        print(f"| {row['name']} | {size:.3f} | {speed:.2f}x | {row['accuracy']:.4f} | {verdict} |")
    print(f"\nchosen: {report['chosenVariant']}")


if __name__ == "__main__":
    main()
