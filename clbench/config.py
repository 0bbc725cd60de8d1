"""Typed configuration: dataclass defaults < benchmark YAML < ``--config`` file < ``--set`` overrides.

A resolved run configuration has the sections ``benchmark`` (the benchmark's options), ``model``, ``train``
(engine schedule) and ``method`` (the method's typed config), plus ``seed``. Unknown keys are rejected with the
list of valid ones. ``method.<train key>`` (e.g. ``method.lr``) overrides the schedule for that method only.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from clbench.errors import UserError


@dataclass
class TrainConfig:
    """The engine's schedule (ZSCL's MTIL defaults; benchmarks override in their YAML)."""

    lr: float = 1e-5
    iterations: int | None = 1000  # schedule length N per task; None -> use ``epochs``
    epochs: int | None = None
    batch_size: int = 64
    warmup: int = 100  # linear warm-up iterations, then cosine to 0 (ZSCL's cosine_lr)
    # Take step N too (N + 1 optimizer steps per task): the ZSCL (mtil/src/models/finetune.py:180,
    # cil/continual_clip/models.py:187) and GIFT (src/models/finetune_gift.py:138) loops run
    # ``range(total_iterations + 1)``; step N has the schedule's end lr (0 after the cosine, or the warm-up lr
    # (N+1)/warmup when N < warmup, e.g. cifar100_50's 16 batches with 30 warm-up steps).
    final_step: bool = True
    label_smoothing: float = 0.2
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    grad_clip: float | None = None
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16
    eval_batch_size: int | str = "auto"  # auto: 1024 on CUDA, 256 on CPU
    num_workers: int | str = "auto"  # DataLoader workers; auto: 0 on CPU, from the CPU count on CUDA
    # decoded-set cache (clbench.eval_cache): test sets decoded once per run; results-neutral, not hashed
    eval_cache: bool = True
    eval_cache_memory_gb: float | None = None  # host memory for decoded sets; None = a quarter of physical RAM
    eval_cache_dir: str | None = None  # memory-mapped sets beyond that; None = <out>/.eval-cache
    compile: bool = False  # torch.compile the image and text towers (CUDA; measured no win on CPU, see README)
    channels_last: bool = False  # image tower's conv weights channels-last (ResNet towers: faster steps, see README)
    eval_initial: bool = True  # evaluate the pretrained model before the first task (zero-shot reference row)
    log_every: int = 10
    # mid-task checkpoints (``checkpoint-step.pt``): after every N optimizer steps and/or every S seconds of a
    # task, whichever comes first (None switches that trigger off). A requeued or killed run resumes at the next
    # step instead of replaying the task. Results-neutral (not hashed): a resumed run gives the same matrix.
    checkpoint_every: int | None = None
    checkpoint_every_s: float | None = 600.0
    # experiment loggers mirroring the step logs and accuracy rows (clbench.loggers): csv, tensorboard, wandb
    loggers: list[str] = field(default_factory=list)

    def validate(self) -> None:
        """Every value in its range, so that bad input fails before any work (NaN fails every check)."""
        if (self.iterations is None) == (self.epochs is None):
            raise UserError("set exactly one of train.iterations and train.epochs (set the other to null)")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise UserError(f"train.precision must be auto, fp32, bf16 or fp16, not {self.precision!r}")
        for key, low, high, closed in (("lr", 0.0, math.inf, False), ("eps", 0.0, math.inf, False),
                                       ("weight_decay", 0.0, math.inf, True),
                                       ("label_smoothing", 0.0, 1.0, True), ("beta1", 0.0, 1.0, True),
                                       ("beta2", 0.0, 1.0, True)):
            value = float(getattr(self, key))
            above_low = value >= low if closed else value > low
            if not (math.isfinite(value) and above_low and value < high):
                bounds = f"{'[' if closed else '('}{low:g}, {high:g})"
                raise UserError(f"train.{key} must be a finite number in {bounds}, got {value!r}")
        if self.grad_clip is not None and not (math.isfinite(self.grad_clip) and self.grad_clip > 0):
            raise UserError(f"train.grad_clip must be positive (or null for no clipping), got {self.grad_clip!r}")
        for key, low in (("iterations", 1), ("epochs", 1), ("batch_size", 1), ("eval_batch_size", 1),
                         ("log_every", 1), ("warmup", 0), ("num_workers", 0)):
            value = getattr(self, key)
            if key in ("eval_batch_size", "num_workers") and value == "auto":
                continue
            if isinstance(value, str):
                raise UserError(f"train.{key} must be an integer or auto, got {value!r}")
            if value is not None and value < low:
                raise UserError(f"train.{key} must be at least {low}, got {value!r}")
        if self.checkpoint_every is not None and (isinstance(self.checkpoint_every, bool)
                                                  or self.checkpoint_every < 1):
            raise UserError(f"train.checkpoint_every must be a number of steps >= 1 (or null for none), got "
                            f"{self.checkpoint_every!r}")
        if self.checkpoint_every_s is not None and not (math.isfinite(self.checkpoint_every_s)
                                                        and self.checkpoint_every_s > 0):
            raise UserError(f"train.checkpoint_every_s must be a positive number of seconds (or null for none), "
                            f"got {self.checkpoint_every_s!r}")
        from clbench.loggers import LOGGERS

        unknown = [n for n in self.loggers if n not in LOGGERS]
        if unknown:
            raise UserError(f"train.loggers: unknown logger {unknown[0]!r}; valid: {', '.join(LOGGERS)}")
        if self.eval_cache_memory_gb is not None and not self.eval_cache_memory_gb >= 0:  # NaN too
            raise UserError("train.eval_cache_memory_gb must be 0 or more (0: decoded sets go to files only)")


#: Train keys that change how fast a run goes, never its results: left out of the run id's hash, so turning
#: them on or off continues (``--resume``) the same run folder.
RESULTS_NEUTRAL_TRAIN_KEYS = ("eval_cache", "eval_cache_memory_gb", "eval_cache_dir", "checkpoint_every",
                              "checkpoint_every_s", "loggers")
#: Train keys added after runs existed, hashed only when set away from this default: runs that leave them alone
#: keep their run id (``--resume`` finds them); setting one (it changes float rounding) starts a new run id.
HASHED_WHEN_SET: dict[str, Any] = {"channels_last": False}


@dataclass
class ModelConfig:
    name: str = "ViT-B-16"
    pretrained: str | None = "openai"
    download: bool = False  # allow open_clip to fetch missing weights (never happens otherwise)


@dataclass
class ResolvedConfig:
    """Everything that determines a run's results (hashed into the run id)."""

    benchmark: str
    method: str
    seed: int
    benchmark_options: Any
    model: ModelConfig
    train: TrainConfig
    method_config: Any
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": {"name": self.benchmark, **dataclasses.asdict(self.benchmark_options)},
            "model": dataclasses.asdict(self.model),
            "train": dataclasses.asdict(self.train),
            "method": {"name": self.method, **dataclasses.asdict(self.method_config)},
            "seed": self.seed,
        }

    def identity(self) -> dict[str, Any]:
        """:meth:`to_dict` without the results-neutral keys: what the run id hashes."""
        out = self.to_dict()
        out["train"] = {k: v for k, v in out["train"].items() if k not in RESULTS_NEUTRAL_TRAIN_KEYS
                        and not (k in HASHED_WHEN_SET and v == HASHED_WHEN_SET[k])}
        return out


def load_yaml_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; malformed YAML is a one-line error with file:line."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file {p} does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"config file {p} is not UTF-8 text (binary, or saved as UTF-16?); save it as UTF-8 "
                        "YAML") from None
    except OSError as exc:
        raise UserError(f"cannot read config file {p}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise UserError(f"config file {p} is nested too deeply to be a clbench config") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise UserError(f"malformed YAML at {where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{p} must hold a mapping of sections (benchmark, model, train, method)")
    return data


def parse_set(items: list[str]) -> dict[str, Any]:
    """``a.b=value`` pairs into a nested dict; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        section, _, rest = key.partition(".")
        if not sep or not section or not rest:
            raise UserError(f"--set expects section.key=value (e.g. train.lr=1e-4), got {item!r}")
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        out.setdefault(section, {})
        if not isinstance(out[section], dict):
            raise UserError(f"--set {item!r} conflicts with another --set for {section}")
        out[section][rest] = value
    return out


def _allowed(tp: Any) -> tuple[type, ...]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return tuple(t for a in typing.get_args(tp) for t in _allowed(a))
    if tp is Any:
        return (object,)
    if origin is not None:
        return (origin,)
    return (tp,) if isinstance(tp, type) else (object,)


def coerce(section: str, key: str, value: Any, tp: Any) -> Any:
    """Check (and gently convert) a value against the dataclass field type."""
    allowed = _allowed(tp)
    if value is None:
        if type(None) in allowed:
            return None
        raise UserError(f"{section}.{key} may not be null")
    if isinstance(value, bool) and bool not in allowed and object not in allowed:
        raise UserError(f"{section}.{key} expects {_type_name(tp)}, got {value!r}")
    if isinstance(value, allowed):
        return value
    if float in allowed and isinstance(value, int):
        return float(value)
    if float in allowed and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if tuple in allowed and isinstance(value, list):
        return tuple(value)
    if list in allowed and isinstance(value, tuple):
        return list(value)
    raise UserError(f"{section}.{key} expects {_type_name(tp)}, got {value!r}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def apply_overrides(obj: Any, section: str, values: dict[str, Any]) -> Any:
    """A copy of dataclass ``obj`` with ``values`` applied; unknown keys fail with the valid keys."""
    hints = typing.get_type_hints(type(obj))
    valid = [f.name for f in fields(obj)]
    changes = {}
    for key, value in values.items():
        if key not in valid:
            raise UserError(f"unknown config key {section}.{key}; valid keys: {', '.join(valid) or '(none)'}")
        changes[key] = coerce(section, key, value, hints[key])
    return dataclasses.replace(obj, **changes)


def train_keys() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


def method_section(layers: list[dict[str, Any]], method: str, config_cls: type) -> tuple[dict, dict]:
    """Split the method overrides of every layer into (method-config keys, train keys) for ``method``.

    ``method.<key>`` applies to every selected method that has ``key``; ``methods.<name>.<key>`` (file) and
    ``<name>.<key>`` (``--set``) apply to one method.
    """
    own_keys = {f.name for f in fields(config_cls)}
    cfg: dict[str, Any] = {}
    train: dict[str, Any] = {}
    for layer in layers:
        generic = layer.get("method") or {}
        specific = {**((layer.get("methods") or {}).get(method) or {}), **(layer.get(method) or {})}
        for key, value in generic.items():
            if key == "name":
                continue
            if key in own_keys:
                cfg[key] = value
            elif key in train_keys():
                train[key] = value
        for key, value in specific.items():
            if key in own_keys:
                cfg[key] = value
            elif key in train_keys():
                train[key] = value
            else:
                raise UserError(f"unknown config key {method}.{key}; valid keys: "
                                f"{', '.join(sorted(own_keys | set(train_keys())))}")
    return cfg, train


def check_generic_method_keys(layers: list[dict[str, Any]], method_configs: dict[str, type]) -> None:
    """A ``method.<key>`` that no selected method (nor the schedule) knows is an error."""
    known = set(train_keys()) | {"name"}
    for cls in method_configs.values():
        known |= {f.name for f in fields(cls)}
    for layer in layers:
        for key in (layer.get("method") or {}):
            if key not in known:
                raise UserError(f"unknown config key method.{key}; valid keys: {', '.join(sorted(known))}")


SECTIONS = ("benchmark", "model", "train", "method", "methods")


def check_sections(layer: dict[str, Any], method_names: list[str], origin: str) -> None:
    for key in layer:
        if key not in SECTIONS and key not in method_names:
            raise UserError(f"unknown config section {key!r} in {origin}; valid: "
                            f"{', '.join(SECTIONS + tuple(method_names))}")
        if not isinstance(layer[key], dict):
            raise UserError(f"config section {key!r} in {origin} must be a mapping")
