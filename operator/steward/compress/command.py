"""``steward compress``: the runner's command line (what a CompressionJob's Job runs).

torch is imported only when the command runs, so the operator's own install (no torch) keeps
every other command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from steward.api.v1alpha1.compressionjob import (
    CompressionMethod,
    Gate,
    HardwareTarget,
    ModelFormat,
)


def _methods(text: str) -> list[CompressionMethod]:
    try:
        return [CompressionMethod(name.strip()) for name in text.split(",") if name.strip()]
    except ValueError as error:
        known = ", ".join(m.value for m in CompressionMethod)
        raise click.BadParameter(f"{error}; known: {known}") from None


@click.command()
@click.option("--model", "model_uri", required=True, help="Local path or pvc://claim/path.")
@click.option("--format", "model_format", type=click.Choice([f.value for f in ModelFormat]),
              default=ModelFormat.TORCH_SAVE.value, show_default=True)  # fmt: skip
@click.option("--architecture", help="StateDict: module.path:ClassName that builds the model.")
@click.option("--methods", required=True, help="Comma-separated, e.g. DynamicInt8,LowRank.")
@click.option("--eval", "eval_uri", required=True,
              help="Evaluation data: .pt or .npz; .json texts and labels (retrieval).")  # fmt: skip
@click.option("--train", "train_uri", help="Training data for fine-tuning and distillation.")
@click.option("--max-accuracy-drop", type=click.FloatRange(0, 1), default=0.01,
              show_default=True)  # fmt: skip
@click.option("--max-latency-ratio", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True)  # fmt: skip
@click.option("--min-samples", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--alpha", type=click.FloatRange(min=0), default=1.0, show_default=True)
@click.option("--beta", type=click.FloatRange(min=0), default=1.0, show_default=True)
@click.option("--batch-sizes", default="1", show_default=True, help="Comma-separated.")
@click.option(
    "--compile",
    "compile_models",
    is_flag=True,
    help="Time the torch.compile'd models (as a compiling serving runtime runs them).",
)
@click.option("--hardware", type=click.Choice([h.value for h in HardwareTarget]),
              default=HardwareTarget.CPU.value, show_default=True)  # fmt: skip
@click.option("--usd-per-hour", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Price of the serving hardware, for the cost per 1000 requests.")  # fmt: skip
@click.option("--options", "options_json", default="{}", help="Method options as JSON.")
@click.option("--out", "out_uri", required=True, help="Folder for report.json and model.pt.")
@click.option("--result-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the result here (the termination message).")  # fmt: skip
def compress(**given: Any) -> None:
    """Make compressed variants of a model, measure each, and choose one by the gate."""
    try:
        from steward.compress.data import (  # noqa: PLC0415 (torch)
            DataError,
            load_dataset,
            load_evaluation,
        )
        from steward.compress.measure import Timing  # noqa: PLC0415
        from steward.compress.methods import Hardware  # noqa: PLC0415
        from steward.compress.models import ModelError, load_model  # noqa: PLC0415
        from steward.compress.runner import Request, local_path, run  # noqa: PLC0415
    except ImportError as error:
        raise click.ClickException(f"{error}: pip install 'ai-steward[compress]'") from None
    console = Console(stderr=True, width=200)
    try:
        options = json.loads(given["options_json"])
        model = load_model(local_path(given["model_uri"]), ModelFormat(given["model_format"]),
                           given["architecture"], options.get("architectureArgs"))  # fmt: skip
        evaluation = load_evaluation(local_path(given["eval_uri"]))
        train = load_dataset(local_path(given["train_uri"])) if given["train_uri"] else None
        batch_sizes = [int(b) for b in given["batch_sizes"].split(",")]
    except (ModelError, DataError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    weights = {"alpha": given["alpha"], "beta": given["beta"]}
    gate = Gate.model_validate({"maxAccuracyDrop": given["max_accuracy_drop"],
                                "maxLatencyRatio": given["max_latency_ratio"],
                                "weights": weights})  # fmt: skip
    request = Request(
        model=model, methods=_methods(given["methods"]), evaluation=evaluation, gate=gate,
        min_samples=given["min_samples"], output=local_path(given["out_uri"]),
        timing=Timing(batch_sizes=batch_sizes, compile=given["compile_models"]),
        hardware=Hardware.detect(given["hardware"] == HardwareTarget.GPU.value),
        train=train, options=options, usd_per_hour=given["usd_per_hour"],
    )  # fmt: skip
    report = run(request, report=console.print)
    console.print(_table(report))
    if given["result_file"] is not None:
        from steward.api.compression_result import encode  # noqa: PLC0415
        from steward.compress.runner import runner_result  # noqa: PLC0415

        given["result_file"].write_text(encode(runner_result(report)))
    click.echo(json.dumps({"chosenVariant": report["chosenVariant"],
                           "accepted": report["accepted"]}))  # fmt: skip


def _table(report: dict[str, Any]) -> Table:
    table = Table(title=f"chosen: {report['chosenVariant'] or 'none (gate failed)'}")
    for column in ("variant", "bytes", "params", "p50 ms", "p95 ms", "accuracy", "drop",
                   "USD/1k", "J", "passed"):  # fmt: skip
        table.add_column(column, justify="left" if column == "variant" else "right")
    for row in report["variants"]:
        cost, objective = row["costPer1kRequestsUSD"], row["objective"]
        table.add_row(row["name"], str(row["sizeBytes"]), str(row["parameters"]),
                      f"{row['latencyP50Ms']:.3f}", f"{row['latencyP95Ms']:.3f}",
                      f"{row['accuracy']:.4f}",
                      "-" if row["accuracyDrop"] is None else f"{row['accuracyDrop']:+.4f}",
                      "-" if cost is None else f"{cost:.6f}",
                      "-" if objective is None else f"{objective:.4f}",
                      "yes" if row["passed"] else "; ".join(row["reasons"])[:60])  # fmt: skip
    return table
