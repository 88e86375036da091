"""The scripted scenario: what the demo does to the cluster, and what it waits for Steward to do.

One :meth:`Scenario.tick` a second, from the display loop. The demo only does what the world
would do (submit work, reclaim a spot node, run the compression runner kwok cannot run); every
other change is Steward's, and each goal below is met only when the cluster shows it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from steward.act.kube import (
    BUDGETS,
    COMPRESSION_JOBS,
    COST_POLICIES,
    GPU_NODE_POOLS,
    INFERENCE_SERVICES,
    NAMESPACES,
    NODES,
    PODS,
    TRAINING_JOBS,
    Kube,
)
from steward.api.constants import LABEL_COMPRESSION_JOB
from steward.demo import compression, scenario
from steward.demo.scenario import FINETUNE, LATE_JOB, NIGHTLY_EVAL, SERVICE, TEAM, DemoSettings
from steward.demo.view import Raw, Reader
from steward.observe.prometheus import aligned_end

Say = Callable[[str], None]


@dataclass
class Goal:
    """Something Steward must be seen doing; ``met`` once the cluster shows it."""

    key: str
    text: str
    met: bool = False
    detail: str = ""


def goals(with_compression: bool) -> list[Goal]:
    listed = [
        Goal("scale-up", "Node pools grow from pending GPU pods"),
        Goal("on-spot", f"{FINETUNE} runs on spot"),
        Goal("resumed", f"{FINETUNE} survives a spot preemption, resumed from its checkpoint"),
        Goal("shift", f"Budget at 25%: {NIGHTLY_EVAL} moved to spot"),
        Goal("suspend", f"Budget at 55%: low-priority {NIGHTLY_EVAL} suspended"),
        Goal("block", f"Budget at 80%: new work ({LATE_JOB}) held"),
        Goal("finished", f"{FINETUNE} finishes"),
    ]
    if with_compression:
        listed.insert(5, Goal("compressed", f"Idle {SERVICE} compressed; variant promoted"))
    return listed


@dataclass
class Scenario:
    """The demo's side of the story; see the module docstring."""

    kube: Kube
    reader: Reader
    settings: DemoSettings
    workdir: Path
    say: Say
    compress: bool
    goals: list[Goal] = field(default_factory=list)
    _preempted: str | None = None
    _late_submitted: bool = False
    _runner: threading.Thread | None = None
    _runner_done: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.goals = goals(self.compress)

    @property
    def model_dir(self) -> Path:
        return self.workdir / "models" / SERVICE

    # --- The start -------------------------------------------------------------------------------
    def apply(self, step_seconds: int) -> None:
        """Create the team, its policies, pools, Budget (its period anchored on the accounting
        grid of ``step_seconds``) and workloads."""
        self.kube.create(NAMESPACES, scenario.namespace())
        for pool in scenario.node_pools():
            self.kube.create(GPU_NODE_POOLS, pool)
        for policy in scenario.policies():
            self.kube.create(COST_POLICIES, policy)
        anchor = aligned_end(datetime.now(UTC), step_seconds, 0)
        self.kube.create(BUDGETS, scenario.budget(self.settings, anchor))
        self.say(
            f"applied: GPU node pools {scenario.SPOT_POOL} and {scenario.ON_DEMAND_POOL} "
            f"(0 nodes), the team's policies, Budget {scenario.BUDGET} "
            f"(${self.settings.budget_usd} per {self.settings.budget_minutes} min)"
        )
        settings = self.settings
        self.kube.create(
            TRAINING_JOBS,
            scenario.training_job(
                FINETUNE,
                settings,
                priority="Normal",
                capacity="SpotWithFallback",
                seconds=settings.finetune_seconds,
            ),
        )
        self.kube.create(
            TRAINING_JOBS,
            scenario.training_job(
                NIGHTLY_EVAL, settings, priority="Low", capacity="OnDemand", seconds=3600
            ),
        )
        self.kube.create(INFERENCE_SERVICES, scenario.inference_service(self.model_dir))
        self.say(
            f"submitted: {FINETUNE} (8 GPUs, checkpointed, spot allowed), {NIGHTLY_EVAL} "
            f"(8 GPUs, Low priority, on-demand), {SERVICE} (1 GPU, mostly idle)"
        )

    # --- Every second ----------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return all(goal.met for goal in self.goals)

    def tick(self) -> None:
        """Look at the cluster once, do the world's part, mark what Steward has shown."""
        pods = self.reader.pods()
        jobs = {o["metadata"]["name"]: o for o in self.reader.team(TRAINING_JOBS)}
        self._watch_scale_up()
        self._watch_finetune(jobs.get(FINETUNE), pods)
        self._watch_budget_actions(jobs)
        if self.compress:
            self._watch_compression(pods)

    def _met(self, key: str, detail: str) -> None:
        goal = next(g for g in self.goals if g.key == key)
        if not goal.met:
            goal.met, goal.detail = True, detail
            self.say(f"[green]✓[/] {goal.text}: {detail}")

    def _watch_scale_up(self) -> None:
        for pool in self.kube.list(GPU_NODE_POOLS):
            decision = (pool.get("status") or {}).get("lastDecision") or {}
            if decision.get("toNodes", 0) > decision.get("fromNodes", 0):
                self._met("scale-up", f"{pool['metadata']['name']}: {decision.get('reason')}")

    def _watch_finetune(self, job: Raw | None, pods: list[Raw]) -> None:
        status = (job or {}).get("status") or {}
        running = [
            p
            for p in pods
            if _running(p) and _labels(p).get("job-name", "").startswith(f"{FINETUNE}-")
        ]
        if status.get("capacityType") == "Spot" and running:
            self._met(
                "on-spot", f"attempt {status.get('attempt')} on {running[0]['spec']['nodeName']}"
            )
        if self._preempted is None and running and status.get("attempt") == 1:
            started = _started(running[0])
            if started is not None and _age(started) >= self.settings.preempt_after_seconds:
                self._preempted = running[0]["spec"]["nodeName"]
                self.say(
                    f"the cloud reclaims spot node {self._preempted} "
                    f"(the demo deletes it, as a spot preemption does)"
                )
                self.kube.request("DELETE", NODES.path(None, self._preempted))
        if self._preempted and status.get("preemptions", 0) >= 1 and running:
            env = {e["name"]: e.get("value") for e in running[0]["spec"]["containers"][0]["env"]}
            if env.get("STEWARD_RESUME") == "1":
                self._met(
                    "resumed",
                    f"attempt {status.get('attempt')} resumes from "
                    f"{env.get('STEWARD_CHECKPOINT_DIR')} on {status.get('capacityType')}",
                )
        if status.get("phase") == "Succeeded":
            self._met(
                "finished",
                f"after {status.get('preemptions', 0)} preemption(s), "
                f"${float(status['cost']['totalUSD']):,.2f}",
            )

    def _watch_budget_actions(self, jobs: dict[str, Raw]) -> None:
        evaluation = (jobs.get(NIGHTLY_EVAL) or {}).get("status") or {}
        if evaluation.get("capacityType") == "Spot":
            self._met("shift", f"attempt {evaluation.get('attempt')} on spot")
        if evaluation.get("phase") == "Suspended":
            self._met("suspend", evaluation.get("lastDecision") or "suspended")
        actions = (self.reader.budget().get("status") or {}).get("activeActions") or []
        if "BlockNewWork" in actions and not self._late_submitted:
            self._late_submitted = True
            self.kube.create(
                TRAINING_JOBS,
                scenario.training_job(
                    LATE_JOB, self.settings, priority="Normal", capacity="OnDemand", seconds=60
                ),
            )
            self.say(f"submitted: {LATE_JOB} (8 GPUs) while the Budget holds new work")
        late = (jobs.get(LATE_JOB) or {}).get("status") or {}
        if late.get("phase") == "Blocked":
            self._met("block", late.get("lastDecision") or "blocked")

    def _watch_compression(self, pods: list[Raw]) -> None:
        if self._runner is None:
            runner = next(
                (p for p in pods if _running(p) and LABEL_COMPRESSION_JOB in _labels(p)), None
            )
            if runner is not None:
                self.say(
                    f"Steward started CompressionJob "
                    f"{_labels(runner)[LABEL_COMPRESSION_JOB]}; kwok runs its pod, "
                    "the runner itself runs here as a local process (CPU)"
                )
                self._runner = threading.Thread(
                    target=self._run_runner, args=(runner,), daemon=True
                )
                self._runner.start()
        elif not self._runner.is_alive() and "handed" not in self._runner_done:
            self._runner_done["handed"] = True
            if "error" in self._runner_done:
                self.errors.append(str(self._runner_done["error"]))
                self.say(f"[red]{self._runner_done['error']}[/]")
        for job in self.reader.team(COMPRESSION_JOBS):
            status = job.get("status") or {}
            # Only a promotion meets the goal: a failed gate is shown by its Event, and missed.
            if status.get("phase") == "Succeeded" and status.get("promoted"):
                self._met(
                    "compressed",
                    f"{job['metadata']['name']}: {status.get('chosenVariant')} promoted",
                )

    def _run_runner(self, pod: Raw) -> None:
        try:
            message = compression.run_runner(pod, self.workdir / "runner")
            patch = {
                "metadata": {
                    "annotations": {
                        compression.MESSAGE_ANNOTATION: message,
                        "steward.ai/run-time": "1s",
                    }
                }
            }
            self.kube.merge_patch(PODS, TEAM, pod["metadata"]["name"], patch)
        except Exception as error:  # reported on screen by the display loop
            self._runner_done["error"] = error


def _labels(pod: Raw) -> dict[str, str]:
    return dict(pod["metadata"].get("labels") or {})


def _running(pod: Raw) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and not pod["metadata"].get(
        "deletionTimestamp"
    )


def _started(pod: Raw) -> datetime | None:
    text = (pod.get("status") or {}).get("startTime")
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _age(moment: datetime) -> float:
    return (datetime.now(UTC) - moment).total_seconds()
