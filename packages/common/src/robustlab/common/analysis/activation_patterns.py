"""Binary activation patterns of ReLU layers during training: their entropy and their similarity between epochs.

A ReLU layer splits its inputs by which units are active: the pattern ``z > 0`` of its pre-activation ``z`` (the
same as ``relu(z) > 0``). Hartmann, Franzen & Brodehl (2021) follow, per layer and over training, the distribution
of these patterns over the data: its Shannon entropy (how many regions the layer uses, and how evenly) and the
Jaccard index between the sets of patterns of two measurements (how much the layer's partition of the data still
changes). :class:`ActivationPatternRecorder` records them during the training forward passes, cheaply enough to
leave on, and hands one row of statistics per epoch.

What counts as one pattern (``pattern``), as in the authors' code (``actpat_modules/activations/activation_stats``:
the sign of the input along dimension 1, hashed per remaining index):

- ``"channels"`` (default, the authors'): the vector of a layer's channels at one position. A dense layer
  ``(N, C)`` gives one pattern per sample; a convolutional layer ``(N, C, H, W)`` one per sample and pixel, so the
  distribution is over ``N * H * W`` points;
- ``"sample"``: the whole flattened output of one sample (one pattern per sample; for wide convolutional layers
  nearly every sample has its own pattern, the entropy then saturates at ``log2 N``).

How patterns are counted: the units' bits (1 where ``z > 0``, as 0./1. floats in a buffer kept between passes) go
through one matrix product with powers of two that gives each pattern's 24-bit words (bit ``c`` of word ``j`` is
channel ``24 j + c``), exactly: a word is a sum of distinct powers of two below 2**24, which float32 holds, whatever
the matmul precision. A pattern of at most 48 bits is its key, exactly; wider patterns are hashed from their 48-bit
pairs of words into one 64-bit key (collisions have probability about ``d**2 / 2**65`` for ``d`` distinct patterns:
nil in practice). Layers of at most ``dense_bits`` bits count into a table of ``2**bits`` bins (one scattered add a
pass); wider ones keep the passes' keys (int32 up to 32 bits), sorted and counted when they pass 2**23 keys and at
the end of the epoch. Everything stays on the layer's device; per epoch a few numbers per layer leave it. Memory:
the 0/1 buffer as large as the largest recorded output, and a few numbers per pattern of each recorded pass.

Which layers: every ``nn.ReLU`` module by default (:func:`relu_layers`). A network that applies ReLU as a
function (``torch.nn.functional.relu``, e.g. robustlab.vision's ``ResNet``) has no such module: name instead
the modules whose outputs carry the same signs, the module computing each pre-activation (the batch norm before
``F.relu``: ``relu(z) > 0`` exactly where ``z > 0``) or a module whose output is a ReLU's (a residual block that
ends in ``F.relu``). For ``ResNet`` that is ``bn1``, then per block ``layerS.B.bn1`` (its inner ReLU) and
``layerS.B`` (its output ReLU).

What is recorded: forward passes of modules in training mode (``model.train()``), outside
:func:`robustlab.common.features.attack_pass` (attacks and attributions) unless ``during_attacks``. Validation
and prediction (eval mode) and the many forward passes of an adversarial-training attack are not counted.

Cost (``benchmarks/bench_activation_patterns.py``: one CPU thread, batch 128, the median over the rounds of an
epoch's CPU time with the recorder over the plain epoch's in the same round, glibc told to keep freed memory for
both sides; seven runs on a shared 2-core machine): at the default ``every=2`` (every second training pass)
1.05x for SmallCNN (its three ``nn.ReLU``; runs 1.02-1.10) and 1.04x for ResNet-8 (seven sites; 1.00-1.08); every
pass (``every=1``) 1.09x (1.06-1.10) and 1.06x (1.00-1.10), at the 10 % limit, hence the default. With glibc's
default allocator the page faults of either side swing single runs by more than that (``--allocator default``).
The recorder must read every recorded output and write its bits once: memory traffic of about three passes over
the output, against a convolution's arithmetic that small networks finish quickly.

Statistics per layer and epoch (:data:`STATISTICS`, over the epoch's patterns, as the authors' ``DS-act-stats``):

- ``entropy``: ``H = -sum_p q_p log2 q_p`` (bits), ``q_p`` the fraction of points with pattern ``p``;
- ``relative_entropy``: ``H / min(C, log2 n)`` for ``C`` bits a pattern and ``n`` points (the authors'
  "% max Entropy": 1 when every point has its own pattern or every pattern is equally used);
- ``patterns``: the number of distinct patterns; ``points``: ``n``;
- ``most_frequent``: the share of the most frequent pattern;
- ``jaccard``: ``|P_t ∩ P_{t-1}| / |P_t ∪ P_{t-1}|`` for the sets of distinct patterns of this epoch and the
  previous one (the authors' ``JI(last,current)``; None at the first epoch);
- ``weighted_jaccard``: ``sum_p min(c_t, c_{t-1}) / sum_p max(c_t, c_{t-1})`` over pattern counts (their
  ``wJI``; None at the first epoch).

Departure from the authors: they measure in a separate pass over the whole (unaugmented) training set with the
weights frozen at the measuring step, on a copy of the network in training mode, every fraction of an epoch, and
count in fixed-size hash tables (collisions merge patterns). This recorder pools the patterns of the epoch's own
training forward passes (no extra pass: that is what makes it cheap enough to leave on), so one epoch's
histogram mixes the weights of all its steps, and counts patterns exactly (up to 64-bit hash collisions).

Reference:
    Hartmann, D., Franzen, D., Brodehl, S. "Studying the Evolution of Neural Activation Patterns During Training
    of Feed-Forward ReLU Networks", Frontiers in Artificial Intelligence 4 (2021). doi:10.3389/frai.2021.642374.
    Code: github.com/JGU-VC/activation-pattern-analysis, commit 14da42ad541ee4faf35d360a6e871fd44decd33d.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from robustlab.common.errors import ConfigError
from robustlab.common.features import FeatureRecorder, in_attack_pass

__all__ = ["ActivationPatternRecorder", "PATTERNS", "STATISTICS", "pattern_statistics", "plot_pattern_history",
           "relu_layers"]

PATTERNS = ("channels", "sample")
"""What one pattern is: a position's channel vector (the authors') or a sample's whole layer output."""

STATISTICS = ("entropy", "relative_entropy", "patterns", "points", "most_frequent", "jaccard", "weighted_jaccard")
"""The numbers of one layer and epoch in :attr:`ActivationPatternRecorder.history`."""

_FRACTIONS = ("relative_entropy", "most_frequent", "jaccard", "weighted_jaccard")
_WORD = 24  # bits a word: a sum of distinct powers of two below 2**24 is exact in float32
_MIX = 0x9E3779B97F4A7C15 - 2**64  # the 64-bit golden-ratio constant as a signed int64 (multiplication wraps)
_MERGE_AT = 1 << 23  # raw keys of one layer (32 or 64 MiB) before they are counted


def relu_layers(model: nn.Module) -> list[str]:
    """The names of the ``nn.ReLU`` modules of ``model``, in registration order.

    Raises:
        ConfigError: there is none (a network that calls ``torch.nn.functional.relu``); the message says what to
            name instead.
    """
    names = [name for name, m in model.named_modules() if isinstance(m, nn.ReLU)]
    if not names:
        raise ConfigError(
            f"{type(model).__name__} has no nn.ReLU module (it applies ReLU as a function, e.g. "
            "torch.nn.functional.relu): name the layers instead, the modules whose outputs have the ReLU's signs: "
            "the module computing each pre-activation (a batch norm before F.relu) or one whose output is a ReLU's "
            "(a residual block ending in F.relu)")
    return names


class _Packer:
    """How a layer's outputs of one shape, dtype and device become one int64 key per pattern: what does not change
    between passes (the word weights, the word and key buffers) made once.

    The 0/1 units ``(N, bits, positions)`` (one position per sample for ``"sample"`` patterns) become 24-bit words
    in one matrix product with powers of two, exact: a word is a sum of distinct powers of two below 2**24, and 0,
    1 and powers of two are kept by any float32 matmul precision (TF32 and bfloat16 included). Two words are one
    exact 48-bit key; more are hashed, pair by pair, into one 64-bit key.
    """

    def __init__(self, output: Tensor, pattern: str) -> None:
        self.shape, self.dtype, self.device = output.shape, output.dtype, output.device
        self.inference = torch.is_inference_mode_enabled()
        # half precision cannot hold a 24-bit word: the bits of other dtypes go into float32
        self.cast = output.dtype not in (torch.float32, torch.float64)
        dtype = torch.float32 if self.cast else output.dtype
        self.scratch_key = (dtype, output.device)
        self.size = output.numel()
        n = self.n = output.shape[0]
        self.bits = output.shape[1] if pattern == "channels" else math.prod(output.shape[1:])
        p = self.positions = math.prod(output.shape[2:]) if pattern == "channels" else 1
        k = self.n_words = -(-self.bits // _WORD)
        self.wide = k > 32  # many words (wide "sample" patterns): a (24,) vector against each word's channels
        if self.wide:
            self.powers = torch.exp2(torch.arange(_WORD, dtype=dtype, device=output.device))
        else:
            c = torch.arange(self.bits)
            powers = torch.zeros(k, self.bits, dtype=torch.float64)
            powers[c // _WORD, c] = torch.exp2((c % _WORD).double())
            self.powers = powers.to(dtype=dtype, device=output.device)
            self.words = torch.empty(n, k, p, dtype=dtype, device=output.device)
        self.ints = torch.empty(n, k, p, dtype=torch.int64, device=output.device)
        self.ones = torch.ones(n * p, dtype=torch.int64, device=output.device)

    def keys(self, on: Tensor) -> Tensor:
        """``(N * positions,)`` int64 keys of the 0/1 units ``on`` (this packer's shape); a view of a buffer of
        this packer when they are the words themselves (at most 24 bits)."""
        n, k, p = self.n, self.n_words, self.positions
        on = on.view(n, self.bits, p)
        if self.wide:
            if self.bits % _WORD:
                on = torch.cat([on, on.new_zeros(n, k * _WORD - self.bits, p)], 1)
            # in full precision under autocast too (the other products write into float buffers: never autocast)
            with torch.autocast(on.device.type, enabled=False):
                self.ints.copy_(torch.einsum("nwbp,b->nwp", on.view(n, k, _WORD, p), self.powers))
        else:
            if p == 1:
                torch.matmul(on.view(n, self.bits), self.powers.T, out=self.words.view(n, k))
            else:
                torch.matmul(self.powers, on, out=self.words)
            self.ints.copy_(self.words)
        if k == 1:
            return self.ints.view(-1)
        if k == 2:
            return torch.add(self.ints[:, 0], self.ints[:, 1], alpha=1 << _WORD).view(-1)
        words = self.ints
        if k % 2:
            words = torch.cat([words, words.new_zeros(n, 1, p)], 1)
        words = words[:, 0::2] | (words[:, 1::2] << _WORD)
        keys = words[:, 0]
        for i in range(1, words.shape[1]):
            keys = (keys * _MIX) ^ words[:, i]
        return keys.reshape(-1)


def _distinct(keys: Tensor) -> tuple[Tensor, Tensor]:
    """The distinct values of ``keys``, sorted, and how often each occurs."""
    if keys.device.type == "cpu":  # numpy's sort takes about half the time of torch's on one CPU thread
        uniq, counts = np.unique(keys.numpy(), return_counts=True)
        return torch.from_numpy(uniq), torch.from_numpy(counts.astype(np.int64))
    return torch.unique_consecutive(torch.sort(keys).values, return_counts=True)


class _Counts:
    """The pattern counts of one layer in one epoch: a dense table (narrow patterns), or the raw keys of the
    batches, sorted and counted once they grow past ``_MERGE_AT`` and at the end of the epoch (one large sort
    costs a quarter of many per-batch ones when most patterns are distinct)."""

    def __init__(self, bits: int, dense_bits: int, device: torch.device) -> None:
        self.bits = bits
        self.dense = bits <= dense_bits
        self.device = device
        with torch.inference_mode(False):  # a normal tensor even when the first pass runs in inference mode
            self.table = torch.zeros(2 ** bits, dtype=torch.int64, device=device) if self.dense else None
        self.raw: list[Tensor] = []
        self.raw_size = 0
        self.counted: tuple[Tensor, Tensor] | None = None

    def add(self, keys: Tensor, ones: Tensor) -> None:
        """Count ``keys`` (int64); ``ones``: as many int64 ones."""
        if self.dense:
            # scattered adds: half the time of a fresh histogram of a 16-bit table on one CPU thread
            self.table.scatter_add_(0, keys, ones)
            return
        if self.bits <= 32:  # exact keys below 2**32: shifted into int32, half the memory and a faster sort
            keys = (keys - 2**31).to(torch.int32)
        # kept until the epoch ends: a new tensor here (wider keys are hashed into one), never a pass's buffer
        self.raw.append(keys)
        self.raw_size += len(keys)
        if self.raw_size > _MERGE_AT:
            self.counted = self._count()

    def _count(self) -> tuple[Tensor, Tensor]:
        """Every key so far, distinct and sorted, with its count."""
        if self.raw:
            uniq, counts = _distinct(torch.cat(self.raw))
            self.raw, self.raw_size = [], 0
        else:
            uniq = torch.zeros(0, dtype=torch.int32 if self.bits <= 32 else torch.int64, device=self.device)
            counts = torch.zeros(0, dtype=torch.int64, device=self.device)
        if self.counted is None:
            return uniq, counts
        keys = torch.cat([self.counted[0], uniq])
        order = torch.sort(keys).indices
        uniq, inverse = torch.unique_consecutive(keys[order], return_inverse=True)
        total = torch.zeros(len(uniq), dtype=torch.int64, device=keys.device).index_add_(
            0, inverse, torch.cat([self.counted[1], counts])[order])
        return uniq, total

    def finish(self) -> tuple[Tensor, Tensor]:
        """``(sorted distinct keys, their counts)``."""
        if self.dense:
            keys = torch.nonzero(self.table).flatten()
            return keys, self.table[keys]
        return self._count()


def pattern_statistics(keys: Tensor, counts: Tensor, *, bits: int, previous: tuple[Tensor, Tensor] | None = None
                       ) -> dict[str, float | int | None]:
    """The statistics of :data:`STATISTICS` from one layer's distinct patterns and their counts.

    Args:
        keys: the distinct patterns' keys, sorted ascending (any integer ids; only equality and order matter).
        counts: how many points had each.
        bits: bits of one pattern (channels, or the sample's size), for ``relative_entropy``.
        previous: the ``(keys, counts)`` of the previous measurement, or None (the similarities are then None).

    Returns:
        ``name -> value`` (Python numbers; None where undefined).

    Shape:
        ``keys`` and ``counts`` ``(d,)``; ``previous`` the same with its own ``d``.
    """
    n = int(counts.sum())
    out: dict[str, float | int | None] = {"entropy": None, "relative_entropy": None, "patterns": int(len(keys)),
                                          "points": n, "most_frequent": None, "jaccard": None,
                                          "weighted_jaccard": None}
    if n == 0:
        return out
    q = counts.double() / n
    h = float(-(q * torch.log2(q)).sum())
    out["entropy"] = h + 0.0
    top = min(float(bits), math.log2(n))
    out["relative_entropy"] = h / top if top > 0 else 0.0
    out["most_frequent"] = float(counts.max()) / n
    if previous is not None and int(previous[1].sum()) > 0:
        pk, pc = previous[0].to(keys.device), previous[1].to(keys.device)
        # both key sets are sorted and distinct: a binary search finds the shared patterns
        at = torch.searchsorted(pk, keys).clamp_(max=len(pk) - 1)
        shared = pk[at] == keys
        n_shared = int(shared.sum())
        out["jaccard"] = n_shared / (len(keys) + len(pk) - n_shared)
        low = float(torch.minimum(counts[shared], pc[at[shared]]).sum())
        out["weighted_jaccard"] = low / (float(counts.sum()) + float(pc.sum()) - low)
    return out


class ActivationPatternRecorder:
    """Record the binary activation patterns of ReLU layers during training and their statistics per epoch.

    Use it as a callback of :func:`robustlab.common.engine.fit` (``fit(..., callbacks=[recorder])``: hooks on at
    the start, one row of :attr:`history` per epoch, hooks off at the end, also after an error) or as a context
    manager around your own loop, calling :meth:`end_epoch` after each epoch. See the module docstring for the
    patterns and the statistics. The recorder's state is not checkpointed: after ``fit(..., resume=True)`` its
    history starts at the resumed epoch, whose similarities are None. Under ``torchrun`` each process counts the
    patterns of its own share of the batches.

    Args:
        model: the network.
        layers: names from ``model.named_modules()`` or submodules whose output's sign is a ReLU pattern; default
            every ``nn.ReLU`` module (:func:`relu_layers`).
        pattern: ``"channels"`` (a position's channel vector, the authors') or ``"sample"`` (:data:`PATTERNS`).
        every: record the 1st, (1 + every)-th, ... training pass of the model in an epoch (a pass: a call of
            ``model`` in training mode, outside attacks unless ``during_attacks``; in a recorded pass every call of
            the layers is recorded, also of a module used at several places); the statistics are then those of a
            sample of the epoch's passes, at about ``1 / every`` of the cost. Default 2 (every
            second pass): the setting to leave on, within 10 % of an epoch's time (see the module docstring); 1
            (every pass) counts the whole epoch, at 6-10 % of an epoch on CPU.
        dense_bits: patterns of at most this many bits count in a table of ``2**dense_bits`` bins (8 bytes each).
        during_attacks: also record forward passes inside :func:`~robustlab.common.features.attack_pass`.

    Attributes:
        names: the recorded layers.
        history: one dict per epoch: ``{"epoch": e, "layers": {name: {statistic: value}}}`` (plain numbers and
            None: JSON-able).
        bits: bits of one pattern per layer (known after the layer's first recorded pass).

    Raises:
        ConfigError: a layer that is not a submodule (the message names it and close names), a model without
            ``nn.ReLU`` and no ``layers``, an unknown ``pattern``, ``every < 1``, a recorded output that is not a tensor of at
            least two dimensions (names the layer).

    Shape:
        a layer's output ``(N, C, ...)``: ``"channels"`` gives ``N * prod(...)`` patterns of ``C`` bits,
        ``"sample"`` ``N`` patterns of ``C * prod(...)`` bits.

    Reference:
        Hartmann, Franzen & Brodehl, Frontiers in Artificial Intelligence 4 (2021), doi:10.3389/frai.2021.642374.

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> with ActivationPatternRecorder(model) as rec:
        ...     _ = model(torch.randn(64, 4))
        ...     row = rec.end_epoch()
        >>> sorted(row["layers"]), row["layers"]["1"]["points"]
        (['1'], 64)
        >>> len(model[1]._forward_hooks)
        0
    """

    citation = ("Hartmann, D., Franzen, D., Brodehl, S. Studying the Evolution of Neural Activation Patterns During "
                "Training of Feed-Forward ReLU Networks. Frontiers in Artificial Intelligence 4 (2021). "
                "doi:10.3389/frai.2021.642374")

    def __init__(self, model: nn.Module, layers: str | nn.Module | Sequence[str | nn.Module] | None = None, *,
                 pattern: str = "channels", every: int = 2, dense_bits: int = 20,
                 during_attacks: bool = False) -> None:
        if pattern not in PATTERNS:
            raise ConfigError(f"pattern must be one of {PATTERNS}, got {pattern!r}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ConfigError(f"every must be an int >= 1, got {every!r}")
        if not isinstance(dense_bits, int) or not 0 <= dense_bits <= 30:
            raise ConfigError(f"dense_bits must be an int in [0, 30], got {dense_bits!r}")
        self.model = model
        self.pattern = pattern
        self.dense_bits = dense_bits
        self.every = every
        self._passes = 0  # training passes of the model this epoch
        self._in_recorded_pass = True
        self.during_attacks = during_attacks
        chosen = relu_layers(model) if layers is None else layers
        # the name checks and the hook bookkeeping are the FeatureRecorder's; its own hook is never registered
        self._features = FeatureRecorder(model, chosen, detach=True, during_attacks=during_attacks)
        self.names: list[str] = list(self._features.names)
        named = dict(model.named_modules(remove_duplicate=False))
        self._modules = {name: named[name] for name in self.names}
        self.history: list[dict[str, Any]] = []
        self.bits: dict[str, int] = {}
        self._counts: dict[str, _Counts] = {}
        self._previous: dict[str, tuple[Tensor, Tensor]] = {}
        self._packers: dict[str, _Packer] = {}
        self._scratch: dict[tuple[torch.dtype, torch.device], Tensor] = {}  # the 0/1 units, shared by the layers
        self._handles: list[Any] = []
        self._entered_by_fit = False

    # -- hooks ----------------------------------------------------------------------------------------------------
    def __enter__(self) -> ActivationPatternRecorder:
        if self._handles:
            raise RuntimeError("this ActivationPatternRecorder is already recording")
        try:
            self._handles.append(self.model.register_forward_pre_hook(self._count_pass))
            for name in self.names:
                self._handles.append(self._modules[name].register_forward_hook(self._hook(name)))
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._remove()

    def _remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self._packers.clear()
        self._scratch.clear()

    @property
    def active(self) -> bool:
        """True while the hooks are registered."""
        return bool(self._handles)

    def _count_pass(self, model: nn.Module, _inputs: Any) -> None:
        """A forward pre-hook of the model: one more training pass; whether its layers are recorded."""
        if model.training and (self.during_attacks or not in_attack_pass()):
            self._passes += 1
            self._in_recorded_pass = (self._passes - 1) % self.every == 0

    def _hook(self, name: str):
        def record(module: nn.Module, _inputs: Any, output: Any) -> None:
            if not module.training or (not self.during_attacks and in_attack_pass()):
                return
            if self.every > 1 and not self._in_recorded_pass:
                return
            self._record(name, output, nonnegative=isinstance(module, nn.ReLU))

        return record

    def _record(self, name: str, output: Any, *, nonnegative: bool = False) -> None:
        packer = self._packers.get(name)
        if (packer is None or not isinstance(output, Tensor) or output.shape != packer.shape
                or output.dtype != packer.dtype or output.device != packer.device
                or torch.is_inference_mode_enabled() != packer.inference):
            packer = self._packers[name] = self._packer(name, output)
        # the bit of a unit is z > 0 (sign(z) for an nn.ReLU's output relu(z) >= 0, a little cheaper; sign(NaN) is 0
        # as NaN > 0 is False), as 0./1. in a buffer kept between passes: fresh activation-sized tensors every pass
        # cost the allocator's page faults, more than the arithmetic
        out = output.detach()
        dtype, device = packer.scratch_key
        scratch = self._scratch.get(packer.scratch_key)
        if scratch is None or scratch.numel() < packer.size or scratch.is_inference() != packer.inference:
            scratch = self._scratch[packer.scratch_key] = torch.empty(packer.size, dtype=dtype, device=device)
        on = scratch[:packer.size].view(packer.shape)
        if nonnegative and not packer.cast:
            torch.sign(out, out=on)
        else:  # also half precision, integers and bools, straight into float32 0./1.
            torch.gt(out, 0, out=on)
        keys = packer.keys(on)
        counts = self._counts.get(name)
        if counts is None:
            counts = self._counts[name] = _Counts(packer.bits, self.dense_bits, keys.device)
        counts.add(keys, packer.ones)

    def _packer(self, name: str, output: Any) -> _Packer:
        """A new :class:`_Packer` for ``output``, after checking it (the errors name the layer)."""
        if not isinstance(output, Tensor) or output.ndim < 2:
            shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
            raise ConfigError(f"layer {name!r}: activation patterns need a tensor output of shape (N, C, ...), got "
                              f"{shape}")
        packer = _Packer(output, self.pattern)
        if self.bits.setdefault(name, packer.bits) != packer.bits:
            raise ConfigError(f"layer {name!r}: its patterns had {self.bits[name]} bits and now have {packer.bits}; "
                              "the recorder needs a fixed layer width")
        return packer

    # -- epochs ---------------------------------------------------------------------------------------------------
    def end_epoch(self, epoch: int | None = None) -> dict[str, Any]:
        """Close the current epoch: compute its statistics per layer, append them to :attr:`history`, start anew.

        Args:
            epoch: the epoch's number (1-based) in the row; default one more than the last row's.

        Returns:
            The new row ``{"epoch": e, "layers": {name: {statistic: value}}}``; a layer that did not run has
            ``points`` 0 and None elsewhere.
        """
        e = epoch if epoch is not None else (self.history[-1]["epoch"] + 1 if self.history else 1)
        layers: dict[str, dict[str, Any]] = {}
        for name in self.names:
            counts = self._counts.pop(name, None)
            if counts is None:
                layers[name] = pattern_statistics(torch.zeros(0, dtype=torch.int64),
                                                  torch.zeros(0, dtype=torch.int64), bits=self.bits.get(name, 1))
                continue
            keys, c = counts.finish()
            layers[name] = pattern_statistics(keys, c, bits=counts.bits, previous=self._previous.get(name))
            self._previous[name] = (keys, c)
        self._passes, self._in_recorded_pass = 0, True
        row = {"epoch": int(e), "layers": layers}
        self.history.append(row)
        return row

    def series(self, statistic: str) -> dict[str, list[float | int | None]]:
        """``layer -> [value per epoch]`` of one statistic of :data:`STATISTICS`."""
        if statistic not in STATISTICS:
            raise ConfigError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
        return {name: [row["layers"][name][statistic] for row in self.history] for name in self.names}

    # -- as a callback of fit -------------------------------------------------------------------------------------
    def on_fit_start(self, model: nn.Module, state: Any) -> None:
        if not self.active:  # already inside the recorder's with block: that block owns the hooks
            self.__enter__()
            self._entered_by_fit = True

    def on_epoch_start(self, model: nn.Module, state: Any) -> None:
        self._counts.clear()  # nothing recorded between epochs (validation runs in eval mode anyway)

    def on_epoch_end(self, model: nn.Module, state: Any) -> dict[str, float]:
        self.end_epoch(int(state.epoch) + 1)
        return {}

    def on_fit_end(self, model: nn.Module, state: Any) -> None:
        if self._entered_by_fit:
            self._remove()
            self._entered_by_fit = False

    def __repr__(self) -> str:
        return f"ActivationPatternRecorder(layers={self.names}, pattern={self.pattern!r})"


def plot_pattern_history(histories: Mapping[str, Sequence[Mapping[str, Any]]], path: str | Path, *,
                         statistics: Sequence[str] = ("relative_entropy", "jaccard"),
                         extra: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
                         title: str = "") -> None:
    """Draw the evolution of pattern statistics per layer: one column per network, one row per statistic.

    Args:
        histories: ``network label -> history`` (:attr:`ActivationPatternRecorder.history`, or rows of the same
            shape read back from JSON).
        path: the PNG to write.
        statistics: rows of the figure, from :data:`STATISTICS`.
        extra: optional last row: ``network label -> {curve label: values per epoch}`` (e.g. accuracy).
        title: the figure's title.

    Layers are coloured from dark (first) to light (last), so bottom-up convergence reads as dark curves
    settling before light ones.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for s in statistics:
        if s not in STATISTICS:
            raise ConfigError(f"statistics: {s!r} is not one of {STATISTICS}")
    nets = list(histories)
    if not nets:
        raise ConfigError("plot_pattern_history needs at least one history")
    rows = len(statistics) + (1 if extra else 0)
    fig, axes = plt.subplots(rows, len(nets), figsize=(4.2 * len(nets), 2.8 * rows), squeeze=False)
    for j, net in enumerate(nets):
        hist = histories[net]
        names = list(hist[0]["layers"]) if hist else []
        cmap = plt.get_cmap("viridis")
        epochs = [row["epoch"] for row in hist]
        for i, s in enumerate(statistics):
            ax = axes[i][j]
            for k, name in enumerate(names):
                ys = [row["layers"][name][s] for row in hist]
                ys = [float("nan") if y is None else y for y in ys]
                ax.plot(epochs, ys, marker=".", color=cmap(k / max(1, len(names) - 1) * 0.9),
                        label=name or "(model)")
            ax.set_title(f"{net}: {s.replace('_', ' ')}", fontsize=9)
            ax.set_xlabel("epoch")
            if s in _FRACTIONS:
                ax.set_ylim(-0.02, 1.02)
            if i == 0:
                ax.legend(fontsize=6, ncol=2)
        if extra:
            ax = axes[-1][j]
            for label, ys in (extra.get(net) or {}).items():
                ax.plot(range(1, len(ys) + 1), ys, marker=".", label=label)
            ax.set_title(f"{net}: accuracy", fontsize=9)
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("epoch")
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
