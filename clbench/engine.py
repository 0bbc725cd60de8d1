"""The training loop: experiences -> method hooks -> evaluation of every task -> run store.

For each experience of the Avalanche train stream: ``method.before_task`` -> training iterations (``trains``)
and/or one pass of the task's data through ``method.fit_task`` (``fits``, closed-form learners) ->
``method.after_task`` -> evaluate on every task's test set (future ones included) -> one matrix row ->
checkpoint -> results written. The engine knows no method by name.

Mid-task checkpoints (``train.checkpoint_every`` steps / ``checkpoint_every_s`` seconds) save the task in
progress; a resume starts from the task boundary as always, replays ``before_task`` (it only sees the
task-start model and the task-seeded RNG, so it rebuilds the same teachers and anchors), then loads the
saved model, optimizer, scaler, method step state and RNG states and continues with batch ``k + 1`` (a
training batch is a pure function of (seed, task, step)).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from clbench import metrics as metric_fns
from clbench.benchmark import Benchmark, BenchmarkDef
from clbench.config import ResolvedConfig, TrainConfig
from clbench.context import MethodContext
from clbench.cost import CostMeter
from clbench.data import (
    StepBatches,
    derive_seed,
    make_loader,
    resolve_eval_batch,
    resolve_workers,
    step_loader,
)
from clbench.distributed import World
from clbench.environment import describe
from clbench.errors import UserError
from clbench.evaluation import evaluate_row
from clbench.loggers import RunLoggers, check_loggers
from clbench.method import Batch, Method, TaskState
from clbench.models import LoadedModel, compile_towers, load_model, to_channels_last
from clbench.schedule import cosine_lr, set_lr
from clbench.services import ServiceRequest, provide
from clbench.store import FollowerRunDir, MatrixRecord, RunDir, config_hash


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The global RNG states (python, numpy, torch CPU and CUDA) as tensors and plain values
    (``torch.load(weights_only=True)`` reads them back)."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {"python": [version, list(internal), gauss_next], "numpy_keys": torch.from_numpy(keys.astype(np.int64)),
            "numpy_pos": int(pos), "numpy_has_gauss": int(has_gauss), "numpy_gauss": float(gauss),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state` output."""
    version, internal, gauss_next = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss_next))
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), int(state["numpy_pos"]),
                         int(state["numpy_has_gauss"]), float(state["numpy_gauss"])))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def task_seed(seed: int, task_index: int) -> int:
    """Each task reseeds from (run seed, task index): a resumed run replays a task exactly."""
    return seed * 1009 + task_index


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA device is available; use --device cpu or auto")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise UserError(f"unknown device {name!r}; use auto, cpu or cuda[:N]")
    return torch.device(name)


def precision_context(precision: str, device: torch.device) -> tuple[Callable[[], AbstractContextManager[Any]],
                                                                      torch.amp.GradScaler | None]:
    """Autocast factory and grad scaler for the run's precision (bf16 by default on CUDA, fp32 on CPU)."""
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return nullcontext, None
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    return partial(torch.autocast, device_type=device.type, dtype=dtype), scaler


def make_optimizer(params: list[nn.Parameter], lr: float, tcfg: TrainConfig, device: torch.device
                   ) -> torch.optim.AdamW:
    """ZSCL's AdamW; on CUDA the fused kernel (one launch for all parameters instead of several per tensor,
    same update up to rounding). CPU keeps the default implementation, so CPU results stay bit-stable."""
    return torch.optim.AdamW(params, lr=lr, betas=(tcfg.beta1, tcfg.beta2), eps=tcfg.eps,
                             weight_decay=tcfg.weight_decay, fused=True if device.type == "cuda" else None)


@dataclass
class RunResult:
    run_dir: RunDir
    record: MatrixRecord
    metrics: dict[str, float]
    protocol: str
    skipped: bool = False


class Engine:
    """Runs one (benchmark, method, seed) configuration into a run directory."""

    def __init__(self, config: ResolvedConfig, bench_def: BenchmarkDef, method_cls: type[Method], out: Path,
                 device: str = "auto", quiet: bool = False,
                 progress: Callable[[str], None] | None = None,
                 benchmark_cache: dict[tuple[str, str, str], Benchmark] | None = None,
                 world: World | None = None) -> None:
        self.config = config
        self.world = world or World()  # several processes for this run (clbench.distributed); rank 0 writes
        self._bench_cache = benchmark_cache if benchmark_cache is not None else {}
        self.bench_def = bench_def
        self.method_cls = method_cls
        self.device = self.world.device(resolve_device(device))
        self.quiet = quiet
        self.say = progress or (lambda msg: None)
        self.cfg_hash = config_hash(config.identity())
        self.out = Path(out)
        store = RunDir if self.world.is_main else FollowerRunDir
        self.run_dir = store(RunDir.location(out, config.benchmark, config.method, config.seed, self.cfg_hash))
        self.train_cfg: TrainConfig = config.train
        self.workers = resolve_workers(config.train.num_workers, self.device)
        self._started_training = False
        self._initial: nn.Module | None = None
        self._method: Method | None = None
        self._pretrained: dict[str, torch.Tensor] = {}  # pretrained state (CPU): what a checkpoint leaves out
        self._trained_names: set[str] = set()  # parameters the optimizer updated in some task
        self._global_steps = 0  # optimizer steps of the completed tasks (the loggers' x axis)
        self._loggers: RunLoggers | None = None
        check_loggers(config.train.loggers)  # a missing extra fails before anything is written

    # ---- set-up -----------------------------------------------------------------------------------------
    def _prepare_dir(self, resume: bool, force: bool) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Returns (the checkpoint to resume from, or ``{"complete": True}`` for a finished run, or None; the
        mid-task checkpoint of the next task, or None). (None, None) is a fresh start, which empties the folder:
        no earlier attempt's log lines or files survive it.

        Called with the run folder's lock held. A checkpoint whose result files were not all rewritten (killed
        in between) is repaired here: the result files are rewritten from it.
        """
        rd = self.run_dir
        rd.remove_temporaries()
        if force or not rd.exists():
            rd.clear()
            return None, None
        info = rd.read_run()
        if info.get("status") == "complete":
            return {"complete": True}, None
        if not resume:
            raise UserError(f"run {rd.path} exists with {info.get('completed_tasks', 0)}/{len(info.get('tasks', []))} "
                            "tasks done; pass --resume to continue it or --force to start over")
        if not rd.checkpoint_path.exists():
            step = self._load_step_checkpoint(0)
            if step is None:
                rd.clear()
            return None, step
        checkpoint = self._load_checkpoint()
        if int(checkpoint["completed_tasks"]) == len(info.get("tasks", [])):
            try:
                record = MatrixRecord.from_json(checkpoint["record"])
            except (KeyError, TypeError, ValueError):
                raise UserError(f"checkpoint {rd.checkpoint_path} holds no accuracy matrix; rerun with --force to "
                                "start over") from None
            self._write_results(record, {k: v for k, v in info.items() if k not in ("schema_version", "updated")},
                                "complete", int(checkpoint["completed_tasks"]), float(checkpoint["wall_time_s"]),
                                checkpoint.get("cost") if isinstance(checkpoint.get("cost"), dict) else None)
            return {"complete": True}, None
        return checkpoint, self._load_step_checkpoint(int(checkpoint["completed_tasks"]))

    def _load_step_checkpoint(self, task: int) -> dict[str, Any] | None:
        """The mid-task checkpoint of ``task`` (the first one not completed), or None; one of another task is
        stale (killed between the task's checkpoint and its removal) and is deleted."""
        path = self.run_dir.step_checkpoint_path
        if not path.exists():
            return None
        try:
            step = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - truncated, foreign or malicious: all mean "cannot resume"
            reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise UserError(f"mid-task checkpoint {path} cannot be loaded ({reason}); delete it to resume from the "
                            "task boundary, or rerun with --force to start over") from None
        keys = ("task", "step", "steps", "model", "optimizer", "method", "rng", "record", "wall_time_s")
        if not isinstance(step, dict) or any(k not in step for k in keys) or not isinstance(step["task"], int) \
                or not isinstance(step["step"], int) or not isinstance(step["record"], dict):
            raise UserError(f"mid-task checkpoint {path} is not a clbench checkpoint; delete it to resume from the "
                            "task boundary, or rerun with --force to start over")
        if step["task"] != task:
            path.unlink(missing_ok=True)
            return None
        return step

    def _agree_on_start(self, resume: bool, force: bool) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """:meth:`_prepare_dir` on rank 0; the other ranks learn its decision (or its error) and, to resume, load
        the checkpoints it wrote (the broadcast is the barrier: rank 0 has repaired the folder and removed a stale
        mid-task checkpoint by then). Every rank restores rank 0's RNG state from a mid-task checkpoint: the ranks
        draw the same numbers (same seed, same calls), so it is theirs too."""
        world = self.world
        if not world.active:
            return self._prepare_dir(resume, force)
        # Avalanche builds loggers when imported and refuses to on ranks > 0 once a process group exists
        import avalanche.benchmarks  # noqa: F401

        world.init(self.device)
        if world.is_main:
            try:
                found = self._prepare_dir(resume, force)
            except UserError as exc:
                world.broadcast_object({"error": str(exc)})
                raise
            checkpoint, step = found
            done = checkpoint is not None and bool(checkpoint.get("complete"))
            world.broadcast_object({"complete": done, "resume": checkpoint is not None and not done,
                                    "step": step is not None})
            return found
        decision = world.broadcast_object(None)
        if "error" in decision:
            raise UserError(decision["error"])
        if decision["complete"]:
            return {"complete": True}, None
        checkpoint = self._load_checkpoint() if decision["resume"] else None
        task = int(checkpoint["completed_tasks"]) if checkpoint is not None else 0
        return checkpoint, self._load_step_checkpoint(task) if decision["step"] else None

    def _load_checkpoint(self) -> dict[str, Any]:
        """The run's checkpoint (tensors and plain containers only), or a one-line error for a broken one."""
        path = self.run_dir.checkpoint_path
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - truncated, foreign or malicious: all mean "cannot resume"
            reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise UserError(f"checkpoint {path} cannot be loaded ({reason}); rerun with --force to start over") \
                from None
        keys = ("model", "method", "record", "completed_tasks", "wall_time_s")
        if not isinstance(checkpoint, dict) or any(k not in checkpoint for k in keys) \
                or not isinstance(checkpoint["completed_tasks"], int) or not isinstance(checkpoint["record"], dict):
            raise UserError(f"checkpoint {path} is not a clbench checkpoint; rerun with --force to start over")
        return checkpoint

    def _write_results(self, record: MatrixRecord, run_info: dict[str, Any], status: str, done: int,
                       wall: float, cost: dict[str, Any] | None = None) -> None:
        """matrix.json/.csv, metrics.json, then run.json last: run.json says "complete" only once all are."""
        complete = status == "complete"
        protocol = run_info["protocol"]
        self.run_dir.write_matrix(record)
        self.run_dir.write_metrics(protocol, complete, self._metrics(protocol, record) if complete else {})
        extra = {"cost": cost} if cost is not None else {}
        self.run_dir.write_run({**run_info, "status": status, "completed_tasks": done, "wall_time_s": round(wall, 3),
                                **extra})

    def _initial_model(self, loaded: LoadedModel) -> nn.Module:
        if self._initial is None:
            from clbench.context import freeze

            if not self._started_training:
                import copy

                self._initial = freeze(copy.deepcopy(loaded.model))
            else:  # resumed run: reload the pretrained weights (a random init is redrawn from the run seed,
                # as the first load after seed_everything: the initial model of a resumed run is the same)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(self.config.seed)
                    fresh = load_model(self.config.model.name, self.config.model.pretrained, self.device,
                                       self.config.model.download)
                assert self._method is not None
                self._patch(self._method, fresh.model)
                self._initial = freeze(fresh.model.to(self.device))
        return self._initial

    def _patch(self, method: Method, model: nn.Module) -> None:
        """``method.patch_model`` under a fixed seed: the fresh and the resumed run build the same modules."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(task_seed(self.config.seed, -1))
            method.patch_model(model)

    def _parameter_counts(self, model: nn.Module) -> dict[str, int]:
        """total / trainable (updated by the optimizer in some task) / added (not in the pretrained model)."""
        params = dict(model.named_parameters())
        return {"total": sum(p.numel() for p in params.values()),
                "trainable": sum(params[n].numel() for n in self._trained_names if n in params),
                "added": sum(p.numel() for n, p in params.items() if n not in self._pretrained)}

    # ---- main loop --------------------------------------------------------------------------------------
    def run(self, resume: bool = False, force: bool = False) -> RunResult:
        """Train and evaluate the run, holding its folder's lock throughout (a second process is refused)."""
        with self.run_dir.lock():
            try:
                return self._run(resume, force)
            finally:
                if self._loggers is not None:
                    self._loggers.close()
                    self._loggers = None

    def _run(self, resume: bool, force: bool) -> RunResult:
        checkpoint, step_checkpoint = self._agree_on_start(resume, force)
        if checkpoint is not None and checkpoint.get("complete"):
            found = (self.run_dir.read_matrix().to_json(), self.run_dir.read_run()["protocol"]) \
                if self.world.is_main else None
            matrix, protocol = self.world.broadcast_object(found)
            record = MatrixRecord.from_json(matrix)
            return RunResult(self.run_dir, record, self._metrics(protocol, record), protocol, skipped=True)

        cfg = self.config
        seed_everything(cfg.seed)
        if self.device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)
        loaded = load_model(cfg.model.name, cfg.model.pretrained, self.device, cfg.model.download)
        model = loaded.model.to(self.device)
        if self.world.active and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            raise UserError(f"model {cfg.model.name} has BatchNorm layers, whose batch statistics would differ "
                            f"per process; use --nproc 1 or a ViT model")
        if self.train_cfg.channels_last:
            to_channels_last(model)
        if self.train_cfg.compile:
            compile_towers(model)
        bench = self._benchmark(loaded)
        scenario = bench.stream()
        train_stream, test_stream = list(scenario.train_stream), list(scenario.test_stream)
        if len(train_stream) != len(bench.tasks) or len(test_stream) != len(bench.tasks):
            raise AssertionError("the Avalanche stream and the benchmark's task list disagree in length")

        self.say(f"== {cfg.method} on {cfg.benchmark}, seed {cfg.seed} -> {self.run_dir.path}")
        autocast, scaler = precision_context(self.train_cfg.precision, self.device)
        ctx = MethodContext(model, loaded.tokenizer, self.device, self.train_cfg.label_smoothing,
                            autocast=autocast, scaler=scaler, initial_model=lambda: self._initial_model(loaded))
        latest = step_checkpoint if step_checkpoint is not None else checkpoint  # the later one's cost and time
        meter = CostMeter.from_json(latest.get("cost") if latest is not None else None, self.device)
        if not self.world.is_main:
            self.world.barrier()  # rank 0 builds the services first (generates and caches); the others read them
        for name in self.method_cls.services:
            with meter.phase("generation"):
                ctx.services[name] = provide(ServiceRequest(
                    name=name, method=cfg.method, method_config=cfg.method_config, benchmark=bench,
                    transforms=loaded.transforms, device=self.device, seed=cfg.seed,
                    batch_size=self.train_cfg.batch_size, quiet=self.quiet))
            meter.add_images("generation", getattr(ctx.services[name], "generated_images", 0))
        if self.world.is_main:
            self.world.barrier()
        method = self.method_cls(cfg.method_config, ctx)
        self._method = method
        self._pretrained = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        self._patch(method, model)
        model.to(self.device)
        with meter.phase("training"):
            method.before_run()

        tcfg = self.train_cfg
        test_loaders = self._eval_loaders(bench, test_stream, loaded)
        with_auc = bench.protocol == "medxtreme"
        task_names = [t.name for t in bench.tasks]
        env = describe(self.device)
        start_task, wall_before = 0, 0.0
        steps_done = int(step_checkpoint["step"]) + 1 if step_checkpoint is not None else 0  # of start_task
        created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if checkpoint is not None:
            try:
                unexpected = model.load_state_dict(checkpoint["model"], strict=False).unexpected_keys
                if unexpected:
                    raise KeyError(f"tensors this model lacks: {', '.join(unexpected[:3])}")
                method.load_state_dict(checkpoint["method"])
                record = MatrixRecord.from_json(checkpoint["record"])
            except (RuntimeError, KeyError, TypeError, ValueError) as exc:
                reason = " ".join(str(exc).split())[:160]
                raise UserError(f"checkpoint {self.run_dir.checkpoint_path} does not fit this run's model and "
                                f"method ({reason}); rerun with --force to start over") from None
            self._trained_names = set(checkpoint.get("trained_parameters", []))
            start_task = int(checkpoint["completed_tasks"])
            wall_before = float(checkpoint.get("wall_time_s", 0.0))
            self._started_training = True
            ctx.weights_changed()
            self.run_dir.truncate_log(start_task, steps_done)
            if self.world.is_main:
                created = self.run_dir.read_run().get("created", created)
            self.say(f"resuming {self.run_dir.path} after task {start_task}/{len(bench.tasks)}")
        elif step_checkpoint is not None:  # killed in the first task: the record holds the initial row
            record = MatrixRecord.from_json(step_checkpoint["record"])
            self.run_dir.truncate_log(0, steps_done)
            if self.world.is_main:
                created = self.run_dir.read_run().get("created", created)
        else:
            record = MatrixRecord.empty(task_names, with_auc)
            self.run_dir.write_config(cfg.to_dict())
        self.run_dir.write_environment(env)
        self.world.broadcast_parameters(model)  # identical already (same weights, seeds, checkpoint): made sure
        t0 = time.time()
        run_info = {
            "run_id": self.run_dir.path.name, "benchmark": cfg.benchmark, "method": cfg.method, "seed": cfg.seed,
            "protocol": bench.protocol, "tasks": task_names, "config_hash": self.cfg_hash,
            "model": cfg.model.name, "pretrained": cfg.model.pretrained,
            "created": created, "device": env["device"],
        }

        def write_state(status: str, done: int) -> None:
            run_info["parameters"] = self._parameter_counts(model)  # total / trainable / added
            self._write_results(record, run_info, status, done, wall_before + time.time() - t0, meter.to_json())

        def evaluate(after_task: int | None) -> Any:
            with meter.phase("evaluation"):
                row = evaluate_row(method.classifier(), bench=bench, after_task=after_task, loaders=test_loaders,
                                   device=self.device, autocast=autocast, with_auc=with_auc, world=self.world)
            meter.add_images("evaluation", sum(n for a, n in zip(row.accuracy, row.counts, strict=True)
                                               if math.isfinite(a)))
            return row

        if step_checkpoint is not None:
            wall_before = float(step_checkpoint["wall_time_s"])
        if latest is not None:
            self._global_steps = int(latest.get("global_steps", 0))
        resumed = checkpoint is not None or step_checkpoint is not None
        self._loggers = RunLoggers(tcfg.loggers if self.world.is_main else (), self.run_dir, cfg.to_dict(),
                                   (start_task, steps_done, self._global_steps + steps_done) if resumed else None)
        if checkpoint is not None or step_checkpoint is not None:
            # the result files may be one task behind the checkpoint (killed in between)
            write_state("running", start_task)
        else:
            write_state("running", 0)
            if tcfg.eval_initial or not method.trains:
                row = evaluate(after_task=None)
                record.initial, record.counts = row.accuracy, row.counts
                self.run_dir.append_log({"task": -1, "event": "eval_initial", "accuracy": row.accuracy})
                self._loggers.accuracy(-1, task_names, row.accuracy)

        for t in range(start_task, len(bench.tasks)):
            spec = bench.tasks[t]
            seed_everything(task_seed(cfg.seed, t))
            exp_dataset = train_stream[t].dataset
            schedule = self._steps(len(exp_dataset))
            steps = schedule + 1 if self.train_cfg.final_step else schedule
            task = TaskState(index=t, spec=spec, num_tasks=len(bench.tasks), steps=steps if method.trains else 0,
                             train_class_names=spec.class_names, seen_class_names=bench.seen_class_names(t))
            lr = spec.lr if spec.lr is not None else tcfg.lr
            own = method.task_schedule(task, lr) if method.trains else None
            if own is not None:  # the method's paper sets this task's lr (and schedule length N)
                lr = float(own[0])
                if own[1] is not None:
                    schedule = int(own[1])
                    steps = schedule + 1 if self.train_cfg.final_step else schedule
                    task = replace(task, steps=steps)
            offset = bench.class_offset(t)
            ctx.bind_task_data(partial(self._fixed_batches, exp_dataset, offset, task_seed(cfg.seed, t)))
            with meter.phase("training"):
                method.before_task(task)
                if method.trains:
                    resume_at = step_checkpoint if step_checkpoint is not None and t == start_task else None

                    def save_step(step: int, optimizer: torch.optim.Optimizer, task: TaskState = task) -> None:
                        self._save_step(model, method, task, step, optimizer, ctx.scaler, record,
                                        wall_before + time.time() - t0, meter.to_json())

                    self._train_task(method, ctx, task, exp_dataset, offset, schedule, lr, cfg.seed,
                                     resume=resume_at, save_step=save_step)
                    self._global_steps += task.steps
                    meter.add_images("training", task.steps * self.train_cfg.batch_size)
                if method.fits:  # closed-form methods (RAIL): one pass over the task's data, no optimizer
                    self._started_training = True
                    method.fit_task(task, ctx.task_batches())
                    meter.add_images("training", len(exp_dataset))
                method.after_task(task)
            ctx.weights_changed()
            ctx.bind_task_data(None)
            if not self.world.same_parameters(model):
                raise RuntimeError(f"the processes' weights differ after task {spec.name}: method {cfg.method} is "
                                   "not rank-consistent under --nproc (set distributed = False on it)")

            if (not method.trains and not method.fits and bench.protocol in ("mtil", "xtail")
                    and record.initial is not None):
                row_acc, row_auc = list(record.initial), None  # nothing learned: the zero-shot row repeats
            else:
                row = evaluate(after_task=t)
                row_acc, row_auc = row.accuracy, row.auc
                record.counts = row.counts
            record.rows[t] = row_acc
            if record.auc is not None:
                record.auc[t] = row_auc
            self.run_dir.append_log({"task": t, "event": "eval", "accuracy": row_acc})
            self._loggers.accuracy(t, task_names, row_acc)
            done = t + 1
            self._checkpoint(model, method, record, done, wall_before + time.time() - t0, meter.to_json())
            write_state("complete" if done == len(bench.tasks) else "running", done)
            if self.world.is_main:
                self.run_dir.step_checkpoint_path.unlink(missing_ok=True)  # superseded by the task's checkpoint
            self.say(f"[{cfg.method}] after {spec.name} ({done}/{len(bench.tasks)}): "
                     + " ".join(f"{a:.1f}" if math.isfinite(a) else "-" for a in row_acc))

        return RunResult(self.run_dir, record, self._metrics(bench.protocol, record), bench.protocol)

    # ---- pieces -----------------------------------------------------------------------------------------
    def _benchmark(self, loaded: LoadedModel) -> Benchmark:
        """Build the benchmark once per (options, model) and share it across the runs of one command."""
        key = (self.config.benchmark, repr(self.config.benchmark_options), self.config.model.name)
        if key not in self._bench_cache:
            self._bench_cache[key] = self.bench_def.build(self.config.benchmark_options, loaded.transforms)
        return self._bench_cache[key]

    def _eval_loaders(self, bench: Benchmark, test_stream: list[Any], loaded: LoadedModel) -> list[Any]:
        """One loader per test set; with ``train.eval_cache`` each decodes its set once (``clbench.eval_cache``)."""
        tcfg = self.train_cfg
        batch = resolve_eval_batch(tcfg.eval_batch_size, self.device)
        world = self.world
        datasets = [Subset(e.dataset, world.shard(len(e.dataset))) if world.active else e.dataset
                    for e in test_stream]  # each rank scores its contiguous part; the evaluator sums the counts
        loaders = [make_loader(d, batch, self.device, num_workers=self.workers, persistent=not tcfg.eval_cache)
                   for d in datasets]
        if not tcfg.eval_cache or bench.random_eval:  # a random test transform must be drawn at every evaluation
            return loaders
        from clbench.eval_cache import (
            CachePolicy,
            DecodedLoader,
            MemoryBudget,
            dataset_key,
            default_memory_bytes,
        )

        memory = (default_memory_bytes() if tcfg.eval_cache_memory_gb is None
                  else int(tcfg.eval_cache_memory_gb * 1024**3))
        cache_dir = Path(tcfg.eval_cache_dir).expanduser() if tcfg.eval_cache_dir else self.out / ".eval-cache"
        policy = CachePolicy(memory, cache_dir, pin=self.device.type == "cuda")
        budget = MemoryBudget(memory)
        identity = {"benchmark": self.config.benchmark, "options": repr(self.config.benchmark_options),
                    "protocol": bench.protocol, "model": self.config.model.name}
        transform = repr(loaded.transforms.eval)

        def key(j: int) -> str:
            labels = np.asarray([int(t) for t in getattr(test_stream[j].dataset, "targets", [])], dtype=np.int64)
            shard = {"shard": [world.rank, world.size]} if world.active else {}
            return dataset_key({**identity, "task": j, "size": len(test_stream[j].dataset), **shard}, transform,
                               labels)

        mean, std = loaded.transforms.mean, loaded.transforms.std
        return [DecodedLoader(loader, self.device, mean, std, policy, budget, partial(key, j))
                for j, loader in enumerate(loaders)]

    def _steps(self, n_examples: int) -> int:
        """The schedule length N of one task (warm-up + cosine span); ``train.final_step`` adds step N."""
        tcfg = self.train_cfg
        if tcfg.iterations is not None:
            return int(tcfg.iterations)
        return int(tcfg.epochs or 1) * math.ceil(n_examples / tcfg.batch_size)

    def _fixed_batches(self, dataset: Any, offset: int, seed: int, max_batches: int | None) -> Iterator[Batch]:
        """The task's data in order, each draw seeded from (task seed, position): a fixed pass (Fisher, herding)."""
        sampler = StepBatches(len(dataset), self.train_cfg.batch_size, derive_seed(seed, 2), steps=max_batches,
                              shuffle=False)
        for images, labels in step_loader(dataset, sampler, self.device, self.workers):
            yield Batch(images.to(self.device), (labels - offset).to(self.device))

    def train_batches(self, dataset: Any, task: TaskState, seed: int, start: int = 0) -> DataLoader:
        """Batches ``start .. task.steps - 1`` of a task: a pure function of (seed, task, step); under several
        processes, this rank's shard of each (``clbench.distributed``)."""
        part = (lambda n: self.world.step_shard(n)[0]) if self.world.active else None
        sampler = StepBatches(len(dataset), self.train_cfg.batch_size, task_seed(seed, task.index), steps=task.steps,
                              start=start, part=part)
        return step_loader(dataset, sampler, self.device, self.workers)

    def _train_task(self, method: Method, ctx: MethodContext, task: TaskState, dataset: Any, offset: int,
                    schedule: int, lr: float, seed: int, resume: dict[str, Any] | None = None,
                    save_step: Callable[[int, torch.optim.Optimizer], None] | None = None) -> None:
        """``task.steps`` optimizer steps under the warm-up + cosine schedule of length ``schedule``, over the
        parameters the method declares trainable; from the step after ``resume``'s (a mid-task checkpoint),
        calling ``save_step`` whenever ``train.checkpoint_every``/``checkpoint_every_s`` says so."""
        tcfg = self.train_cfg
        steps = task.steps
        declared = {n for n, _ in method.trainable(task)}
        params = []
        for name, p in ctx.model.named_parameters():  # only the declared parameters train (and get gradients)
            p.requires_grad_(name in declared)
            if name in declared:
                params.append(p)
        self._trained_names |= declared
        optimizer = method.optimizer(params, lr)  # the method's own (DIKI: SGD), else ZSCL's AdamW
        if optimizer is None:
            optimizer = make_optimizer(params, lr, tcfg, self.device)
        world = self.world
        scaler = ctx.scaler
        start = int(resume["step"]) + 1 if resume is not None else 0
        loader = self.train_batches(dataset, task, seed, start=start)
        batches, sampler = iter(loader), loader.batch_sampler  # iter() draws from the global RNG
        if resume is not None:  # after that draw: the restored RNG continues where the checkpoint left it
            self._restore_step(resume, ctx, method, task, optimizer)
        self._started_training = True
        bar = None
        if not self.quiet:
            from tqdm import tqdm

            bar = tqdm(total=steps, initial=start, desc=f"{self.config.method} {task.spec.name}", leave=False,
                       unit="it", disable=None)  # None: no bar when stderr is not a terminal (logs, CI)
        ctx.model.train()
        every, every_s = tcfg.checkpoint_every, tcfg.checkpoint_every_s
        last_save = time.monotonic()
        last_logged: tuple[int, float] | None = None  # (step, time) of the previous logged step: images/s
        for step in range(start, steps):
            set_lr(optimizer, cosine_lr(step, lr, tcfg.warmup, schedule))
            images, labels = next(batches)
            batch = Batch(images.to(self.device, non_blocking=True), (labels - offset).to(self.device, non_blocking=True))
            if world.active:
                full = sampler.size(step)
                weight = world.step_shard(full)[1]
                batch.full_size = full
            optimizer.zero_grad(set_to_none=True)
            with ctx.autocast():
                logs = method.training_step(batch, task, step)
            if world.active:  # every rank now holds the whole step batch's gradient (clbench.distributed)
                world.reduce_gradients(params, weight)
            if scaler is not None:
                scaler.unscale_(optimizer)
            if tcfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, tcfg.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            method.after_step(task, step)
            if step % tcfg.log_every == 0 or step == steps - 1:  # the only place step logs become numbers
                if world.active:
                    logs = world.weighted_mean(logs, weight)
                values = {"lr": optimizer.param_groups[0]["lr"], **{k: float(v) for k, v in logs.items()}}
                self.run_dir.append_log({"task": task.index, "step": step, **values})
                if self._loggers is not None and self._loggers.backends:
                    now = time.perf_counter()  # after float(): the device has caught up, no extra sync
                    if last_logged is not None and now > last_logged[1]:
                        values["images_per_s"] = (step - last_logged[0]) * tcfg.batch_size / (now - last_logged[1])
                    last_logged = (step, now)
                    self._loggers.step(task.index, step, self._global_steps + step, values)
            if save_step is not None and step < steps - 1 and (
                    (every is not None and (step + 1) % every == 0)
                    or (every_s is not None and time.monotonic() - last_save >= every_s)):
                save_step(step, optimizer)  # the task's last step is followed by the task checkpoint instead
                last_save = time.monotonic()
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        ctx.model.eval()

    def _restore_step(self, saved: dict[str, Any], ctx: MethodContext, method: Method, task: TaskState,
                      optimizer: torch.optim.Optimizer) -> None:
        """Load a mid-task checkpoint on top of the replayed ``before_task``."""
        path = self.run_dir.step_checkpoint_path
        try:
            if int(saved["steps"]) != task.steps:
                raise ValueError(f"{saved['steps']} steps saved, the task has {task.steps}")
            unexpected = ctx.model.load_state_dict(saved["model"], strict=False).unexpected_keys
            if unexpected:
                raise KeyError(f"tensors this model lacks: {', '.join(unexpected[:3])}")
            optimizer.load_state_dict(saved["optimizer"])
            if ctx.scaler is not None and saved.get("scaler"):
                ctx.scaler.load_state_dict(saved["scaler"])
            method.load_step_state_dict(saved["method"])
            set_rng_state(saved["rng"])
        except (RuntimeError, KeyError, TypeError, ValueError, IndexError) as exc:
            reason = " ".join(str(exc).split())[:160]
            raise UserError(f"mid-task checkpoint {path} does not fit this run's model and method ({reason}); "
                            "delete it to resume from the task boundary, or rerun with --force") from None
        self._trained_names |= set(saved.get("trained_parameters", []))
        ctx.weights_changed()
        self.say(f"resuming task {task.index + 1}/{task.num_tasks} at step {int(saved['step']) + 1}/{task.steps} "
                 f"({self.run_dir.path}, mid-task checkpoint)")

    def _save_step(self, model: nn.Module, method: Method, task: TaskState, step: int,
                   optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None, record: MatrixRecord,
                   wall: float, cost: dict[str, Any]) -> None:
        """The mid-task checkpoint after ``step`` of ``task`` (atomic; the result files do not change); rank 0
        alone writes it (collective-free: ranks may disagree on a time-based trigger without harm)."""
        import io

        from clbench.store import write_atomic

        if not self.world.is_main:
            return
        buf = io.BytesIO()
        torch.save({"task": task.index, "step": step, "steps": task.steps, "model": self._changed_state(model),
                    "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler is not None else None,
                    "method": method.step_state_dict(), "rng": rng_state(), "record": record.to_json(),
                    "wall_time_s": wall, "cost": cost, "trained_parameters": sorted(self._trained_names),
                    "global_steps": self._global_steps}, buf)
        write_atomic(self.run_dir.step_checkpoint_path, buf.getvalue())

    def _checkpoint(self, model: nn.Module, method: Method, record: MatrixRecord, done: int, wall: float,
                    cost: dict[str, Any]) -> None:
        import io

        from clbench.store import write_atomic

        if not self.world.is_main:
            return

        buf = io.BytesIO()
        torch.save({"model": self._changed_state(model), "method": method.state_dict(), "record": record.to_json(),
                    "completed_tasks": done, "wall_time_s": wall, "cost": cost,
                    "trained_parameters": sorted(self._trained_names), "global_steps": self._global_steps}, buf)
        write_atomic(self.run_dir.checkpoint_path, buf.getvalue())

    def _changed_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The model's tensors that differ from, or are absent in, the pretrained weights: a resumed run
        reloads the pretrained model, patches it the same way and loads these on top (a frozen backbone is
        never stored)."""
        out = {}
        for name, tensor in model.state_dict().items():
            ref = self._pretrained.get(name)
            cpu = tensor.detach().cpu()
            if ref is None or ref.shape != cpu.shape or ref.dtype != cpu.dtype or not torch.equal(ref, cpu):
                out[name] = tensor
        return out

    @staticmethod
    def _metrics(protocol: str, record: MatrixRecord) -> dict[str, float]:
        if record.completed() < len(record.tasks):
            return {}
        return metric_fns.compute(protocol, record.array(), record.counts, record.auc_array())
