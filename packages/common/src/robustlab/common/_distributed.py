"""The process group of a ``torchrun`` launch, or a single process: sharding loaders and collectives."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from robustlab.common.errors import ConfigError

__all__ = ["Distributed"]


class Distributed:
    """The process group of a ``torchrun`` launch (WORLD_SIZE > 1), or a single process."""

    def __init__(self, device: torch.device) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.created = False
        self.rank = 0
        # Tensors handed to collectives stay referenced here until the group is gone: otherwise a gloo worker
        # thread may free the last reference and wait for the GIL while the main thread, holding the GIL,
        # destroys the process group and joins that thread (a deadlock at the end of fit).
        self._keep: list[Tensor] = []
        if self.world > 1:
            if not dist.is_initialized():
                backend = "nccl" if device.type == "cuda" else "gloo"
                dist.init_process_group(backend)
                self.created = True
            self.rank = dist.get_rank()

    @property
    def main(self) -> bool:
        return self.rank == 0

    def _comm(self, t: Tensor) -> Tensor:
        t = t.detach().clone()
        if dist.get_backend() == "nccl":
            t = t.cuda()
        self._keep.append(t)
        return t

    def all_sum(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        t = self._comm(torch.tensor(values, dtype=torch.float64))
        dist.all_reduce(t)
        return t.cpu().tolist()

    def all_reduce(self, t: Tensor) -> Tensor:
        """The sum of ``t`` over the processes, on ``t``'s device."""
        if self.world == 1:
            return t
        c = self._comm(t)
        dist.all_reduce(c)
        return c.to(t.device)

    def all_gather(self, t: Tensor) -> Tensor:
        """Every process's ``t`` concatenated along dim 0 in rank order (first dims may differ)."""
        if self.world == 1:
            return t
        n = self._comm(torch.tensor([t.shape[0]], dtype=torch.int64))
        sizes = [torch.zeros_like(n) for _ in range(self.world)]
        dist.all_gather(sizes, n)
        sizes = [int(s.item()) for s in sizes]
        biggest = max(sizes)
        padded = torch.zeros((biggest, *t.shape[1:]), dtype=t.dtype, device=t.device)
        padded[: t.shape[0]] = t.detach()
        c = self._comm(padded)
        parts = [torch.zeros_like(c) for _ in range(self.world)]
        dist.all_gather(parts, c)
        self._keep += parts
        return torch.cat([p[:s].to(t.device) for p, s in zip(parts, sizes)])

    def broadcast_state(self, module: torch.nn.Module) -> None:
        """Overwrite ``module``'s parameters and buffers with those of process 0 (in place)."""
        if self.world == 1:
            return
        with torch.no_grad():
            for t in module.state_dict(keep_vars=True).values():
                if isinstance(t, Tensor):
                    dist.broadcast(t.data, src=0)

    def broadcast_object(self, obj):
        """Process 0's ``obj`` (picklable) on every process."""
        if self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def release(self) -> None:
        """Drop the tensors kept from earlier collectives (call between epochs, when all have completed)."""
        self._keep.clear()

    def shard(self, loader, seed: int, *, what: str = "training") -> DataLoader:
        """Rebuild ``loader`` so that each process reads its share of every global batch."""
        if self.world == 1 or isinstance(getattr(loader, "sampler", None), DistributedSampler):
            return loader
        if not isinstance(loader, DataLoader):
            raise ConfigError(
                f"the {what} loader is a {type(loader).__name__}, not a torch DataLoader: under torchrun every "
                "process would read all of it; pass a DataLoader (fit shards it) or one with a DistributedSampler"
            )
        if loader.batch_size is None or loader.batch_size % self.world:
            raise ConfigError(
                f"the {what} loader's batch_size ({loader.batch_size}) is the global batch and must divide by "
                f"the number of processes ({self.world})"
            )
        sampler = DistributedSampler(
            loader.dataset, num_replicas=self.world, rank=self.rank,
            shuffle=isinstance(loader.sampler, RandomSampler), seed=seed, drop_last=loader.drop_last,
        )
        return DataLoader(
            loader.dataset, batch_size=loader.batch_size // self.world, sampler=sampler,
            num_workers=loader.num_workers, collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
            drop_last=loader.drop_last, worker_init_fn=loader.worker_init_fn,
        )

    def barrier(self) -> None:
        if self.world > 1:
            self.all_sum([0.0])

    def close(self, *, synchronize: bool = False) -> None:
        """Destroy the process group this object created. ``synchronize``: first wait until every process gets
        here (a blocking collective, which also completes the asynchronous ones still in flight), so that no
        process tears its group down while another's collectives still use it (gloo aborts the process then);
        only after a run that ended well, since after an error the other processes may never come."""
        if self.created:
            if synchronize and self.world > 1:
                self.barrier()
            dist.destroy_process_group()
        self._keep.clear()
