"""``rail`` / ``rail_dual``: RAIL (Xu et al., NeurIPS 2024) — closed-form ridge regression on frozen CLIP features.

No SGD: each task's training data is read once (``Method.fit_task``) and the regression head is updated in
closed form. At test time zero-shot CLIP decides the domain and the regression head refines the images it sends
to learned classes. Reference: ``linghan1997/Regression-based-Analytic-Incremental-Learning``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from clbench.classifier import Classifier, HeadSpec, TextHeadClassifier
from clbench.errors import UserError
from clbench.method import Batch, Method, TaskState
from clbench.registry import register_method

FORMS = ("primal", "dual")
KERNELS = ("rbf", "linear")


@dataclass
class RailConfig:
    form: str = "primal"  # primal: random-feature projection + recursive ridge; dual: kernel ridge regression
    hidden_dim: int = 15000  # primal projection width (configs/analytic_clip.yaml:12)
    feature_expansion: bool = True  # primal: project with ReLU(W_rand x) first (yaml:11); false = ridge on x
    regularization: float = 0.1  # primal ridge lambda (yaml:9)
    dual_regularization: float = 0.001  # dual ridge lambda (dual_RAIL.py:62: lamda=0.001)
    gamma: float = 0.1  # dual RBF kernel exp(-gamma ||x - x'||^2) (yaml:14)
    kernel: str = "rbf"  # dual kernel: rbf (the paper) | linear (x . x', for the primal/dual equivalence check)
    fusion_weight: float = 0.8  # weight of the regression head in the fused scores (yaml:10)
    max_samples: int | None = None  # dual: refuse to grow the N x N kernel past this many training images


def gaussian_kernel(x: torch.Tensor, centres: torch.Tensor, gamma: float) -> torch.Tensor:
    """exp(-gamma ||x_i - c_j||^2) (RAIL ``utils.py:77-91``, computed in one product instead of 32-row blocks)."""
    sq = (x * x).sum(1, keepdim=True) - 2.0 * x @ centres.t() + (centres * centres).sum(1)[None, :]
    return torch.exp(-gamma * sq.clamp_min(0.0))


class RecursiveRidge:
    """Ridge regression W = (X^T X + lambda I)^{-1} X^T Y, updated batch by batch (RAIL ``primal_RAIL.py:99-101``).

    With R = (X^T X + lambda I)^{-1}: a batch (X_b, Y_b) gives
    R <- R - R X_b^T (I + X_b R X_b^T)^{-1} X_b R (Woodbury) and W <- W + R X_b^T (Y_b - X_b W); new classes add
    zero columns to W (``primal_RAIL.py:80``). Starting from R = I / lambda, W = 0 this equals the batch closed
    form over all data seen (the reference solves the first task directly, ``primal_RAIL.py:66-73``: the same
    matrix). Float64 throughout; ``solve`` instead of the reference's ``pinverse`` (the matrix is SPD).
    """

    def __init__(self, dim: int, lam: float, device: torch.device) -> None:
        self.R = torch.eye(dim, dtype=torch.float64, device=device) / lam
        self.W = torch.zeros(dim, 0, dtype=torch.float64, device=device)

    def add_classes(self, n: int) -> None:
        self.W = torch.cat([self.W, self.W.new_zeros(self.W.shape[0], n)], dim=1)

    def update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        x, y = x.double(), y.double()
        rx = self.R @ x.t()  # (D, b): the only D x D x b product besides the rank-b update below
        inner = torch.eye(x.shape[0], dtype=x.dtype, device=x.device) + x @ rx
        k = torch.linalg.solve(inner, rx.t())  # (b, D) = (I + x R x^T)^{-1} x R
        # R_new x^T = rx - rx (k x^T): reuses rx instead of a second D x D product
        r_new_xt = rx - rx @ (k @ x.t())
        self.R = self.R - rx @ k
        self.R = 0.5 * (self.R + self.R.t())  # keep R symmetric against round-off
        self.W = self.W + r_new_xt @ (y - x @ self.W)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return x.double() @ self.W


class KernelRidge:
    """Dual form (RAIL ``dual_RAIL.py:93-119``, ``utils.py:116-140``): keep every training feature X and one-hot Y;
    alpha = (K(X, X) + lambda I)^{-1} Y, prediction K(x, X) alpha. Float64; ``solve`` instead of ``np.mat(...).I``."""

    def __init__(self, lam: float, gamma: float, kernel: str, device: torch.device) -> None:
        self.lam, self.gamma, self.kernel = lam, gamma, kernel
        self.X = torch.zeros(0, 0, dtype=torch.float64, device=device)
        self.Y = torch.zeros(0, 0, dtype=torch.float64, device=device)
        self.alpha: torch.Tensor | None = None

    def gram(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return gaussian_kernel(a, b, self.gamma) if self.kernel == "rbf" else a @ b.t()

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Append a task's features and one-hot labels (labels over every class seen so far)."""
        x, y = x.double(), y.double()
        if self.X.numel() == 0:
            self.X = x
        else:
            self.X = torch.cat([self.X, x])
        old = F.pad(self.Y, (0, y.shape[1] - self.Y.shape[1])) if self.Y.numel() else y.new_zeros(0, y.shape[1])
        self.Y = torch.cat([old, y])

    def fit(self) -> None:
        k = self.gram(self.X, self.X)
        k.diagonal().add_(self.lam)
        self.alpha = torch.linalg.solve(k, self.Y)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        assert self.alpha is not None
        return self.gram(x.double(), self.X) @ self.alpha


class RailClassifier:
    """Zero-shot CLIP over the head, fused with the regression head where zero-shot picks a learned class.

    RAIL ``primal_RAIL.py:253-273``: p = softmax(s * f(x) T^T) over every class of the head; images whose argmax
    is a class of a learned task get (1 - w) p + w * r(x), with r the regression output over the learned classes
    (zero for the others). The rule needs no domain label: it serves X-TAIL's union head, MTIL's per-task head
    (a learned task's images are always fused, an unseen task's never: Transfer equals zero-shot) and cil.
    Deviations: s is the model's own temperature (100 for OpenAI CLIP, as the reference's literal 100) and the
    text head uses each task's templates (the reference: "a photo of a {}." — xtail_order1's only template).
    """

    def __init__(self, zero_shot: TextHeadClassifier, method: Rail) -> None:
        self.zero_shot = zero_shot
        self.method = method

    def logits(self, images: torch.Tensor, head: HeadSpec) -> torch.Tensor:
        feats = self.method.clip_features(images)
        text = self.zero_shot.text_head(head).float()
        scale = float(self.zero_shot.model.logit_scale.detach().exp())
        with torch.autocast(device_type=feats.device.type, enabled=False):
            probs = (scale * feats @ text.t()).softmax(dim=-1)
        positions, columns = [], []
        for group, start in zip(head.groups, head.offsets(), strict=True):
            first = self.method.class_start.get(group.task)
            if first is not None:
                positions.extend(range(start, start + len(group.class_names)))
                columns.extend(range(first, first + len(group.class_names)))
        if not positions:
            return probs
        pos = torch.tensor(positions, device=probs.device)
        seen = torch.zeros(head.num_classes, dtype=torch.bool, device=probs.device)
        seen[pos] = True
        mask = seen[probs.argmax(dim=1)]
        if not mask.any():
            return probs
        adapted = torch.zeros_like(probs[mask])
        regression = self.method.regress(feats[mask]).float()
        adapted[:, pos] = regression[:, torch.tensor(columns, device=probs.device)]
        w = self.method.config.fusion_weight
        out = probs.clone()
        out[mask] = (1.0 - w) * probs[mask] + w * adapted
        return out


@register_method("rail")
class Rail(Method):
    """RAIL, primal form by default (``primal_RAIL.py``); ``form: dual`` is ``dual_RAIL.py`` (also ``rail_dual``).

    Frozen CLIP; per task one pass over the training images (the engine's ``fit_task``): normalised image
    features -> [primal] ReLU(random projection) -> recursive ridge update / [dual] append to the kernel memory and
    re-solve. Labels are global over the learned tasks in training order. Hyper-parameters from
    ``configs/analytic_clip.yaml``. Deviations: float64 solves (the reference inverts in float32/float64 numpy);
    the projection is drawn from the run seed with PyTorch's default ``nn.Linear`` init, as the reference's.
    """

    paper: ClassVar[str] = ("Xu et al., Advancing Cross-domain Discriminability in Continual Learning of "
                            "Vision-Language Models (RAIL), NeurIPS 2024")
    Config: ClassVar[type] = RailConfig
    # no SGD: every rank fits on the whole task data (ctx.task_batches is not sharded)
    distributed: ClassVar[bool] = True
    trains: ClassVar[bool] = False
    fits: ClassVar[bool] = True

    def before_run(self) -> None:
        cfg: RailConfig = self.config
        if cfg.form not in FORMS:
            raise UserError(f"rail.form must be one of {', '.join(FORMS)}, not {cfg.form!r}")
        if cfg.kernel not in KERNELS:
            raise UserError(f"rail.kernel must be one of {', '.join(KERNELS)}, not {cfg.kernel!r}")
        if not 0.0 <= cfg.fusion_weight <= 1.0:
            raise UserError(f"rail.fusion_weight must lie in [0, 1], not {cfg.fusion_weight}")
        for key in ("hidden_dim", "regularization", "dual_regularization", "gamma"):
            if getattr(cfg, key) <= 0:
                raise UserError(f"rail.{key} must be positive, got {getattr(cfg, key)}")
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.model.eval()
        self.class_start: dict[str, int] = {}  # task name -> its first column in the regression output
        self.num_classes = 0
        self.projection: nn.Linear | None = None
        self.ridge: RecursiveRidge | KernelRidge | None = None  # built on the first features (their width)

    def _build(self, dim: int) -> None:
        """The projection (drawn from the engine-seeded RNG of the first task) and the solver, for ``dim``-wide
        CLIP features."""
        cfg: RailConfig = self.config
        device = self.ctx.device
        if cfg.form == "dual":
            self.ridge = KernelRidge(cfg.dual_regularization, cfg.gamma, cfg.kernel, device)
            return
        if cfg.feature_expansion:
            self.projection = nn.Linear(dim, cfg.hidden_dim, bias=False).to(device).requires_grad_(False)
            dim = cfg.hidden_dim
        self.ridge = RecursiveRidge(dim, cfg.regularization, device)

    @torch.no_grad()
    def clip_features(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised CLIP image features (RAIL ``utils.py:67-73``)."""
        return F.normalize(self.model.encode_image(images).float(), dim=-1)

    def expand(self, feats: torch.Tensor) -> torch.Tensor:
        """The primal feature expansion ReLU(W_rand f) (``primal_RAIL.py:30-33``); identity otherwise."""
        return feats if self.projection is None else torch.relu(self.projection(feats))

    @torch.no_grad()
    def regress(self, feats: torch.Tensor) -> torch.Tensor:
        """Regression scores over every learned class for normalised CLIP features."""
        assert self.ridge is not None
        return self.ridge.predict(self.expand(feats))

    @torch.no_grad()
    def fit_task(self, task: TaskState, batches: Iterator[Batch]) -> None:
        n_new = len(task.train_class_names)
        first = self.num_classes
        self.class_start[task.spec.name] = first
        self.num_classes += n_new
        cfg: RailConfig = self.config
        xs, ys = [], []
        for batch in batches:
            feats = self.clip_features(batch.images)
            if self.ridge is None:
                self._build(feats.shape[1])
            y = F.one_hot(batch.labels + first, self.num_classes)
            if isinstance(self.ridge, RecursiveRidge):
                if self.ridge.W.shape[1] < self.num_classes:
                    self.ridge.add_classes(self.num_classes - self.ridge.W.shape[1])
                self.ridge.update(self.expand(feats), y)
            else:
                xs.append(feats)
                ys.append(y)
        if isinstance(self.ridge, KernelRidge) and xs:
            total = self.ridge.X.shape[0] + sum(len(x) for x in xs)
            if cfg.max_samples is not None and total > cfg.max_samples:
                raise UserError(f"dual RAIL keeps every training image: {total} > rail.max_samples="
                                f"{cfg.max_samples} (an N x N kernel); use the primal form (rail) or a few-shot "
                                "benchmark")
            self.ridge.add(torch.cat(xs), torch.cat(ys))
            self.ridge.fit()

    def classifier(self) -> Classifier:
        return RailClassifier(TextHeadClassifier(self.model, self.ctx.text_heads), self)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"tasks": list(self.class_start), "starts": list(self.class_start.values()),
                                 "num_classes": self.num_classes}
        if self.projection is not None:
            state["projection"] = self.projection.weight.detach().clone()
        if isinstance(self.ridge, RecursiveRidge):
            state.update(R=self.ridge.R, W=self.ridge.W)
        elif isinstance(self.ridge, KernelRidge):
            state.update(X=self.ridge.X, Y=self.ridge.Y)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = self.ctx.device
        self.class_start = dict(zip(state["tasks"], (int(s) for s in state["starts"]), strict=True))
        self.num_classes = int(state["num_classes"])
        if "R" in state or "X" in state:
            width = state["projection"].shape[1] if "projection" in state else (
                state["R"].shape[0] if "R" in state else state["X"].shape[1])
            self._build(width)
        if self.projection is not None:
            self.projection.weight.copy_(state["projection"])
        if isinstance(self.ridge, RecursiveRidge):
            self.ridge.R, self.ridge.W = state["R"].to(device), state["W"].to(device)
        elif isinstance(self.ridge, KernelRidge):
            self.ridge.X, self.ridge.Y = state["X"].to(device), state["Y"].to(device)
            self.ridge.fit()


@dataclass
class RailDualConfig(RailConfig):
    form: str = "dual"


@register_method("rail_dual")
class RailDual(Rail):
    """RAIL's dual form (``dual_RAIL.py``): RBF kernel ridge regression over every training feature seen."""

    Config: ClassVar[type] = RailDualConfig
