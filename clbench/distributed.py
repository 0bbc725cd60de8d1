"""Several processes for one run (``clbench run --nproc N`` or ``torchrun``): data parallelism over ranks.

Why not ``DistributedDataParallel``: methods call ``encode_image``/``encode_text`` and teachers directly (not the
wrapper's ``forward``, which arms DDP's reducer), back-propagate several times per step and edit ``.grad`` by
hand between the passes (GIFT reads the synthetic gradients for its Fisher, then adds AWC gradients). So the
engine reduces the gradients itself, once per step, after the method's whole ``training_step`` and before
unscaling, clipping and the optimizer step.

What each rank computes: every global step batch (a pure function of seed, task and step) is split into
contiguous shards, one per rank; rank r's gradient is weighted by w_r = |shard_r| / |batch| and the weighted
gradients are summed (one bucketed all-reduce). Terms that are per-example means over the step batch (the
task cross-entropy) then give the full-batch mean gradient; terms every rank computes identically (ZSCL's
reference batch, GIFT's synthetic batch and AWC, L2 anchors) keep their value because the weights sum to 1. With
equal shards w_r = 1/N: DDP's average. After the reduction every rank holds the same gradient, takes the same
optimizer step and keeps identical parameters (broadcast from rank 0 once at the start).

Only rank 0 writes the run store; evaluation shards every test set across ranks and sums correct counts.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from clbench.errors import UserError

#: Gradient bytes per all-reduce call (DDP's default bucket is 25 MiB): few calls, bounded extra memory.
BUCKET_BYTES = 25 * 1024**2


@dataclass(frozen=True)
class World:
    """This process's place among the run's processes; ``World()`` is the single-process run (no-ops)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the run store and prints."""
        return self.rank == 0

    @classmethod
    def from_env(cls) -> World:
        """The torchrun variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); a single process without them."""
        if "WORLD_SIZE" not in os.environ:
            return cls()
        try:
            size = int(os.environ["WORLD_SIZE"])
            rank = int(os.environ.get("RANK", "0"))
            local = int(os.environ.get("LOCAL_RANK", str(rank)))
        except ValueError:
            raise UserError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them)") from None
        if size < 1 or not 0 <= rank < size or local < 0:
            raise UserError(f"RANK={rank} does not lie in 0..WORLD_SIZE-1 (WORLD_SIZE={size})")
        return cls(rank, size, local)

    # ---- set-up -----------------------------------------------------------------------------------------
    def device(self, device: torch.device) -> torch.device:
        """One GPU per rank on CUDA (``cuda:LOCAL_RANK``); CPU ranks share the CPU."""
        if not self.active or device.type != "cuda":
            return device
        if self.local_rank >= torch.cuda.device_count():
            raise UserError(f"rank {self.rank} needs GPU {self.local_rank} but {torch.cuda.device_count()} are "
                            "visible; use --nproc at most the number of GPUs")
        torch.cuda.set_device(self.local_rank)
        return torch.device("cuda", self.local_rank)

    def init(self, device: torch.device) -> None:
        """Join the process group (nccl on CUDA, gloo on CPU) from the ``MASTER_ADDR``/``MASTER_PORT`` rendezvous."""
        import torch.distributed as dist

        if not self.active or dist.is_initialized():
            return
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method="env://", rank=self.rank, world_size=self.size,
                                device_id=device if device.type == "cuda" else None)

    def close(self) -> None:
        import torch.distributed as dist

        if self.active and dist.is_initialized():
            dist.destroy_process_group()

    # ---- sharding ---------------------------------------------------------------------------------------
    def shard(self, n: int) -> range:
        """This rank's contiguous part of ``n`` items (sizes differ by at most one; may be empty)."""
        return range(self.rank * n // self.size, (self.rank + 1) * n // self.size)

    def step_shard(self, n: int) -> tuple[range, float]:
        """Positions of this rank's share of a step batch of ``n`` examples and its gradient weight.

        A rank left without examples (a batch smaller than the ranks, e.g. the short last batch of a pass) takes
        the batch's last example with weight 0: it still runs the step (the replicated terms and the method's
        iterators stay in step with the other ranks) but contributes nothing of its own.
        """
        part = self.shard(n)
        if len(part) == 0:
            return range(n - 1, n), 0.0
        return part, len(part) / n

    # ---- collectives ------------------------------------------------------------------------------------
    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (small, picklable values: decisions, records)."""
        if not self.active:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.active:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The elementwise sum over ranks (in place; returned for chaining)."""
        if not self.active:
            return tensor
        import torch.distributed as dist

        if dist.get_backend() == "nccl" and tensor.device.type != "cuda":  # nccl reduces GPU tensors only
            on_gpu = tensor.to(torch.device("cuda", self.local_rank))
            dist.all_reduce(on_gpu, op=dist.ReduceOp.SUM)
            return tensor.copy_(on_gpu)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def broadcast_parameters(self, model: nn.Module) -> None:
        """Rank 0's parameters and buffers on every rank (the ranks start from the same weights)."""
        if not self.active:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for tensor in list(model.parameters()) + list(model.buffers()):
                dist.broadcast(tensor.data, src=0)

    def reduce_gradients(self, params: Sequence[nn.Parameter], weight: float) -> None:
        """``p.grad <- sum over ranks of weight_r * p.grad_r`` for every parameter, in buckets.

        A parameter without a gradient on some ranks counts as zero there; one without a gradient on every rank
        keeps ``grad = None`` (so the optimizer skips it, as in a single process).
        """
        if not self.active:
            return
        present = torch.tensor([p.grad is not None for p in params], dtype=torch.float32,
                               device=params[0].device if params else "cpu")
        self.sum(present)
        for p, seen in zip(params, present.tolist(), strict=True):
            if seen and p.grad is None:
                p.grad = torch.zeros_like(p)
        grads = [p.grad for p in params if p.grad is not None]
        for bucket in _buckets(grads):
            flat = torch.cat([g.reshape(-1) for g in bucket]).mul_(weight)
            self.sum(flat)
            offset = 0
            for g in bucket:
                g.copy_(flat[offset:offset + g.numel()].view_as(g))
                offset += g.numel()

    def weighted_mean(self, values: dict[str, torch.Tensor | float], weight: float) -> dict[str, torch.Tensor]:
        """Logged step values as the whole batch's: sum over ranks of weight_r * value_r (one collective)."""
        keys = sorted(values)
        if not self.active or not keys:
            return {k: torch.as_tensor(values[k]) for k in keys}
        device = next((v.device for v in values.values() if isinstance(v, torch.Tensor)), torch.device("cpu"))
        stacked = torch.stack([torch.as_tensor(values[k], dtype=torch.float64, device=device).reshape(())
                               for k in keys]).mul_(weight)
        self.sum(stacked)
        return dict(zip(keys, stacked, strict=True))

    def same_parameters(self, model: nn.Module) -> bool:
        """Whether every rank holds the same parameters (a checksum per rank; cheap, once per task)."""
        if not self.active:
            return True
        with torch.no_grad():
            local = sum(float(p.detach().double().abs().sum()) + 1e-3 * float(p.detach().double().sum())
                        for p in model.parameters())
        sums = self.gather_objects(local)
        return all(s == sums[0] for s in sums)


def _buckets(grads: Sequence[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
    """Consecutive gradients of one dtype and device, about ``BUCKET_BYTES`` each."""
    bucket: list[torch.Tensor] = []
    size = 0
    for g in grads:
        if bucket and (g.dtype != bucket[0].dtype or g.device != bucket[0].device
                       or size + g.numel() * g.element_size() > BUCKET_BYTES):
            yield bucket
            bucket, size = [], 0
        bucket.append(g)
        size += g.numel() * g.element_size()
    if bucket:
        yield bucket


def free_port() -> int:
    """A TCP port free on this host now (the local rendezvous of ``--nproc``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(nproc: int, argv: Sequence[str]) -> int:
    """``clbench run ... --nproc N`` on one machine: N spawned processes run the same command as ranks 0..N-1
    (the torchrun variables set, a free local port as rendezvous). Returns the command's exit code.

    The first rank to fail stops the others (they would wait for it in a collective forever); its one-line
    error is printed once, here, and its exit code returned (2 for bad input).
    """
    import multiprocessing
    import sys
    import time

    context = multiprocessing.get_context("spawn")
    errors = context.SimpleQueue()
    port = free_port()
    procs = [context.Process(target=_rank_main, args=(rank, nproc, port, list(argv), errors, os.getpid()),
                             name=f"clbench-rank{rank}") for rank in range(nproc)]
    for p in procs:
        p.start()
    failed: multiprocessing.process.BaseProcess | None = None
    try:
        while failed is None and any(p.exitcode is None for p in procs):
            failed = next((p for p in procs if p.exitcode not in (None, 0)), None)
            time.sleep(0.05)
        failed = failed or next((p for p in procs if p.exitcode not in (None, 0)), None)
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()
        sys.stderr.write("clbench: interrupted\n")
        return 130
    if failed is not None:
        for p in procs:
            if p.exitcode is None:
                p.terminate()
    for p in procs:
        p.join()
    if failed is None:
        return 0
    line = errors.get() if not errors.empty() else (
        f"clbench: error: rank {procs.index(failed)} of --nproc {nproc} ended with exit code {failed.exitcode}")
    sys.stderr.write(line + "\n")
    return int(failed.exitcode) if failed.exitcode and failed.exitcode > 0 else 1


def _rank_main(rank: int, nproc: int, port: int, argv: list[str], errors: Any, parent: int) -> None:
    """One spawned rank: the torchrun environment, then the ``clbench`` command with errors sent to the parent."""
    import sys

    from clbench import cli
    from clbench.runner import die_with_parent

    die_with_parent(parent)
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(nproc), "LOCAL_RANK": str(rank),
                       "LOCAL_WORLD_SIZE": str(nproc), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    cli.report_error = errors.put
    sys.exit(cli.main(argv))
