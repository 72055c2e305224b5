"""Generative adversarial networks: the fitted model is the generator, the regime owns the discriminator."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from robustlab.common.errors import ConfigError
from robustlab.common.modes import frozen_parameters, model_mode
from robustlab.common.regimes.base import FitState, Regime, StepContext

__all__ = ["GAN"]


class GAN(Regime):
    """The non-saturating GAN: ``d_steps`` discriminator steps, then one generator step, per batch.

    The model passed to :func:`~robustlab.common.engine.fit` is the generator ``G``; the discriminator ``D`` is a
    trainable network the regime owns (``"discriminator"``: moved to the device, checkpointed, wrapped in DDP
    under ``torchrun``), with an optimizer of its own. Per batch of real samples ``x``:

    1. ``d_steps`` times: fresh noise ``z ~ N(0, I)``, fakes ``G(z)`` without gradients, one discriminator
       forward on the concatenation ``[x, G(z)]`` (one call, one set of DDP hooks per backward; note that a
       batch-norm layer in ``D`` then normalizes real and fake samples together: prefer spectral norm there), and a step of
       ``"discriminator"`` on ``BCE(D(x), 1 - label_smoothing) + BCE(D(G(z)), 0)``. Every discriminator step
       reuses the batch's real samples.
    2. Fresh noise, a step of ``"model"`` on the non-saturating loss ``BCE(D(G(z)), 1)`` (Goodfellow et al.,
       section 3: ``-log D(G(z))`` instead of ``log(1 - D(G(z)))``, which saturates early in training). The
       discriminator's parameters are frozen in this pass (no gradient is computed for them).

    One-sided label smoothing (Salimans et al. 2016, section 3.4) replaces the real targets by
    ``1 - label_smoothing`` (0.1 there) and leaves the fake targets at 0; it keeps an over-confident
    discriminator from giving the generator vanishing gradients. With ``conditional=True`` the networks are
    called as ``G(z, y)`` and ``D(x, y)`` (Mirza & Osindero 2014), ``y`` the batch's labels; the fakes of a
    batch get the labels of its real samples.

    ``train_loss`` in the epoch log is the generator's loss; ``train_d_loss`` (the mean over the discriminator
    steps), ``train_g_loss``, ``train_d_real`` and ``train_d_fake`` (the discriminator's mean probability of
    "real" on real and on fake samples, before its step) come from :attr:`step_metrics`. :meth:`validate`
    reports the discriminator's accuracy on the validation samples against as many fakes (``val_d_accuracy``:
    0.5 when it cannot tell them apart), ``val_d_real``, ``val_d_fake``, ``val_d_loss`` and ``val_g_loss``; the
    fakes come from a private random generator seeded with ``seed``, so validation is the same at every epoch and
    leaves the training's random stream alone. There is no ``val_loss``: without an
    :class:`~robustlab.common.engine.EarlyStopping` that names one of those metrics no ``best.pt`` is written,
    and ``last.pt`` is the run's result.

    Sample grids: with ``on_samples``, the generator draws the same samples at the end of every
    ``sample_every``-th epoch (and of the last one): fixed noise from a private random generator seeded with
    ``seed``, with the labels ``sample_labels`` when conditional, so that grids of successive epochs show how the
    same points of the latent space evolve. ``on_samples(samples, labels, epoch)`` gets the
    samples on the CPU (the generator in eval mode, without gradients), the labels (a CPU tensor, or None) and
    the epoch counted from 1; it is called on the main process only, before validation and before the epoch's
    checkpoint, and draws nothing from the training's random stream (a resumed run stays bit-identical).

    Args:
        discriminator: ``D(x) -> logits`` (``D(x, y)`` when conditional), one logit per sample (shape ``(N,)``
            or ``(N, 1)``) or a map of logits per sample (a PatchGAN's ``(N, 1, H, W)``, averaged in the loss).
        latent_dim: the size of ``z``: an int (``z`` of shape ``(N, latent_dim)``) or a shape (``(100, 1, 1)``
            for a DCGAN generator that starts with a transposed convolution).
        d_steps: discriminator steps per batch (``k`` in Goodfellow et al.'s algorithm 1; they use 1).
        label_smoothing: one-sided smoothing of the real targets, in ``[0, 1)``; 0 turns it off.
        conditional: call ``G(z, y)`` and ``D(x, y)`` with the batch's labels ``y``.
        lr: learning rate of the generator's default Adam (used when ``fit`` gets no optimizer).
        betas: Adam's betas for the generator (Radford et al.'s DCGAN values by default).
        d_lr: learning rate of the discriminator's Adam.
        d_betas: Adam's betas for the discriminator.
        seed: seed of the noise that :meth:`validate` and the sample grids draw.
        on_samples: ``on_samples(samples, labels, epoch)``, called with the fixed-noise samples at the end of
            every ``sample_every``-th epoch and of the last one (e.g. to write an image grid); None: no samples.
        sample_every: epochs between two calls of ``on_samples``.
        sample_labels: the labels of the samples (a sequence or ``(n,)`` tensor of classes), required with
            ``on_samples`` when conditional.
        sample_count: how many samples an unconditional GAN hands ``on_samples`` (a conditional one draws one per
            label of ``sample_labels``).

    Shape:
        batch ``x``: ``(N, *)`` real samples; ``y``: ``(N,)`` labels when conditional (ignored otherwise);
        ``G(z)``: the shape of ``x``.

    Reference:
        Goodfellow, I. et al. "Generative Adversarial Nets", NeurIPS 2014; Salimans, T. et al. "Improved
        Techniques for Training GANs", NeurIPS 2016 (one-sided label smoothing); Mirza, M., Osindero, S.
        "Conditional Generative Adversarial Nets", arXiv:1411.1784, 2014; Radford, A. et al. "Unsupervised
        Representation Learning with Deep Convolutional GANs", ICLR 2016 (Adam 2e-4, beta1 0.5).

    Examples::

        >>> import torch
        >>> from torch.utils.data import DataLoader
        >>> from robustlab.common.data import ArrayDataset
        >>> from robustlab.common.engine import fit
        >>> from robustlab.common.models import MLP
        >>> generator, discriminator = MLP(4, 2, hidden=(16,)), MLP(2, 1, hidden=(16,))
        >>> regime = GAN(discriminator, latent_dim=4, label_smoothing=0.1)
        >>> data = DataLoader(ArrayDataset(torch.randn(64, 2), torch.zeros(64)), batch_size=32)
        >>> result = fit(generator, regime, data, val_loader=data, epochs=2, progress=False)
        >>> sorted(k for k in result.last if k.startswith("train_d"))
        ['train_d_fake', 'train_d_loss', 'train_d_real']
        >>> 0.0 <= result.last["val_d_accuracy"] <= 1.0
        True
        >>> regime.sample(5).shape
        torch.Size([5, 2])
    """

    citation = ("Goodfellow, I., Pouget-Abadie, J., Mirza, M., Xu, B., Warde-Farley, D., Ozair, S., Courville, A., "
                "Bengio, Y. Generative Adversarial Nets. NeurIPS 2014.")

    def __init__(self, discriminator: nn.Module, *, latent_dim: int | tuple[int, ...], d_steps: int = 1,
                 label_smoothing: float = 0.0, conditional: bool = False, lr: float = 2e-4,
                 betas: tuple[float, float] = (0.5, 0.999), d_lr: float = 2e-4,
                 d_betas: tuple[float, float] = (0.5, 0.999), seed: int = 0,
                 on_samples: Callable[[Tensor, Tensor | None, int], Any] | None = None, sample_every: int = 1,
                 sample_labels: Sequence[int] | Tensor | None = None, sample_count: int = 64) -> None:
        super().__init__()
        shape = (latent_dim,) if isinstance(latent_dim, int) else tuple(int(s) for s in latent_dim)
        if not shape or any(s < 1 for s in shape):
            raise ConfigError(f"latent_dim must be a positive int or shape, got {latent_dim!r}")
        if not isinstance(d_steps, int) or d_steps < 1:
            raise ConfigError(f"d_steps must be an int >= 1, got {d_steps!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if on_samples is not None and not callable(on_samples):
            raise ConfigError(f"on_samples must be callable, got {type(on_samples).__name__}")
        if isinstance(sample_every, bool) or not isinstance(sample_every, int) or sample_every < 1:
            raise ConfigError(f"sample_every must be an int >= 1, got {sample_every!r}")
        if isinstance(sample_count, bool) or not isinstance(sample_count, int) or sample_count < 1:
            raise ConfigError(f"sample_count must be an int >= 1, got {sample_count!r}")
        labels = None
        if sample_labels is not None:
            labels = torch.as_tensor(sample_labels).detach().cpu().reshape(-1)
            if labels.numel() == 0 or labels.dtype.is_floating_point or labels.dtype.is_complex or bool(
                    (labels < 0).any()):
                raise ConfigError(f"sample_labels must be class indices >= 0 (at least one), got {sample_labels!r}")
            labels = labels.long()
        if on_samples is not None and conditional and labels is None:
            raise ConfigError("a conditional GAN with on_samples needs sample_labels: the class of each sample")
        self.add_network("discriminator", discriminator, trainable=True)
        self.latent_dim = latent_dim
        self.d_steps = d_steps
        self.label_smoothing = float(label_smoothing)
        self.conditional = conditional
        self.lr, self.betas, self.d_lr, self.d_betas = lr, tuple(betas), d_lr, tuple(d_betas)
        self.seed = seed
        self.on_samples, self.sample_every, self.sample_count = on_samples, sample_every, sample_count
        self.sample_labels = labels
        self._latent_shape = shape
        self._generator: nn.Module | None = None

    @property
    def discriminator(self) -> nn.Module:
        """The discriminator (unwrapped)."""
        return self.networks["discriminator"]

    # -- the two networks -----------------------------------------------------------------------------------------
    def noise(self, n: int, device: torch.device | str = "cpu", *, rng: torch.Generator | None = None) -> Tensor:
        """``n`` latent vectors ``z ~ N(0, I)`` (from ``rng`` when given, drawn on the CPU, else the global
        random stream of ``device``)."""
        if rng is not None:
            return torch.randn((n, *self._latent_shape), generator=rng).to(device)
        return torch.randn((n, *self._latent_shape), device=device)

    def _labels(self, batch: dict) -> Tensor | None:
        if not self.conditional:
            return None
        if batch.get("y") is None:
            raise ConfigError("GAN(conditional=True) needs batches with labels 'y'")
        return batch["y"]

    def _generate(self, generator: nn.Module, z: Tensor, y: Tensor | None) -> Tensor:
        return generator(z) if y is None else generator(z, y)

    def _discriminate(self, discriminator: nn.Module, x: Tensor, y: Tensor | None) -> Tensor:
        logits = discriminator(x) if y is None else discriminator(x, y)
        return logits.reshape(len(x), -1).float()

    def discriminator_loss(self, discriminator: nn.Module, real: Tensor, fake: Tensor,
                           y: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``BCE(D(real), 1 - label_smoothing) + BCE(D(fake), 0)`` from one forward on ``[real, fake]``.

        Returns:
            The loss and the discriminator's ``(N, M)`` logits on the real and on the fake samples.
        """
        n = len(real)
        both = torch.cat([real, fake.detach().to(real.dtype)])
        logits = self._discriminate(discriminator, both, None if y is None else torch.cat([y, y]))
        on_real, on_fake = logits[:n], logits[n:]
        loss = (F.binary_cross_entropy_with_logits(on_real, torch.full_like(on_real, 1.0 - self.label_smoothing))
                + F.binary_cross_entropy_with_logits(on_fake, torch.zeros_like(on_fake)))
        return loss, on_real, on_fake

    def generator_loss(self, model: nn.Module, n: int, device: torch.device, y: Tensor | None = None) -> Tensor:
        """The non-saturating loss ``BCE(D(G(z)), 1)`` of ``n`` fresh fakes; the discriminator's parameters are
        frozen for the pass (the generator alone gets gradients)."""
        discriminator = self.discriminator
        fake = self._generate(model, self.noise(n, device), y)
        with frozen_parameters(discriminator):
            logits = self._discriminate(discriminator, fake, y)
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))

    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        """The generator's loss for a batch (the contract's ``regime(model, batch) -> loss``)."""
        return self.generator_loss(model, len(batch["x"]), batch["x"].device, self._labels(batch))

    # -- what the engine asks -------------------------------------------------------------------------------------
    def setup(self, model: nn.Module, state: FitState) -> None:
        self._generator = model

    def on_epoch_end(self, model: nn.Module, state: FitState) -> dict[str, float]:
        """Hand the fixed-noise samples to ``on_samples`` when this epoch is due (main process only)."""
        epoch = state.epoch + 1
        due = epoch % self.sample_every == 0 or epoch == state.epochs
        if self.on_samples is not None and due and state.dist.rank == 0:
            samples, labels = self.fixed_samples(model)
            self.on_samples(samples, labels, epoch)
        return {}

    def fixed_samples(self, model: nn.Module | None = None) -> tuple[Tensor, Tensor | None]:
        """The samples of the grids: the generator's output on the fixed noise (seeded with ``seed``) and the
        labels ``sample_labels``, both on the CPU.

        Returns:
            ``(samples, labels)``; labels None for an unconditional GAN.
        """
        rng = torch.Generator().manual_seed(self.seed)
        if self.conditional:
            if self.sample_labels is None:
                raise ConfigError("GAN.fixed_samples of a conditional GAN needs sample_labels")
            labels = self.sample_labels
            samples = self.sample(len(labels), labels, model=model, rng=rng)
        else:
            labels, samples = None, self.sample(self.sample_count, model=model, rng=rng)
        return samples.detach().cpu(), labels

    def configure_optimizers(self, model: nn.Module, optimizer: torch.optim.Optimizer | None
                             ) -> dict[str, torch.optim.Optimizer]:
        """``"model"``: ``fit``'s optimizer or Adam(``lr``, ``betas``) over the generator; ``"discriminator"``:
        Adam(``d_lr``, ``d_betas``) over the discriminator."""
        if optimizer is None:
            optimizer = torch.optim.Adam(model.parameters(), lr=self.lr, betas=self.betas)
        d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=self.d_lr, betas=self.d_betas)
        return {"model": optimizer, "discriminator": d_optimizer}

    def train_step(self, step: StepContext, model: nn.Module, batch: dict) -> float:
        real, y = batch["x"], self._labels(batch)
        n, device = len(real), real.device
        discriminator = self.network("discriminator")
        d_values = []
        for _ in range(self.d_steps):
            with torch.no_grad(), step.autocast():
                fake = self._generate(model, self.noise(n, device), y)
            step.zero_grad("discriminator")
            with step.autocast():
                d_loss, on_real, on_fake = self.discriminator_loss(discriminator, real, fake, y)
            d_values.append(step.backward(d_loss, what="discriminator loss"))
            step.step("discriminator")
            step.update_scaler()  # a float16 scaler steps each optimizer once per update: d_steps > 1 needs this
        step.zero_grad("model")
        with step.autocast():
            g_loss = self.generator_loss(model, n, device, y)
        g_value = step.backward(g_loss, what="generator loss")
        step.step("model")
        self.step_metrics = {"d_loss": sum(d_values) / len(d_values), "g_loss": g_value,
                             "d_real": torch.sigmoid(on_real).mean().item(),
                             "d_fake": torch.sigmoid(on_fake).mean().item()}
        return g_value

    @torch.no_grad()
    def validate(self, model: nn.Module, loader, *, metrics=None, device=None) -> dict[str, float]:
        """The discriminator against the validation samples and as many fakes, both networks in eval mode.

        ``metrics`` (functions of a classifier's logits and labels) do not apply to a GAN and are ignored.

        Returns:
            ``{"d_accuracy", "d_real", "d_fake", "d_loss", "g_loss"}``: the fraction of real and fake samples
            the discriminator classifies right (logit > 0 is "real"), its mean probability of "real" on each,
            its loss (real targets 1, not smoothed) and the generator's non-saturating loss.
        """
        from robustlab.common.engine import as_batch, model_device, to_device

        discriminator = self.discriminator
        device = model_device(model) if device is None else torch.device(device)
        rng = torch.Generator().manual_seed(self.seed)
        sums = dict.fromkeys(("d_accuracy", "d_real", "d_fake", "d_loss", "g_loss"), 0.0)
        count = 0
        with model_mode(model, "eval"), model_mode(discriminator, "eval"):
            for batch in loader:
                batch = to_device(as_batch(batch), device)
                real, y = batch["x"], self._labels(batch)
                n = len(real)
                fake = self._generate(model, self.noise(n, device, rng=rng), y)
                on_real = self._discriminate(discriminator, real, y)
                on_fake = self._discriminate(discriminator, fake.to(real.dtype), y)
                bce_real = F.binary_cross_entropy_with_logits(on_real, torch.ones_like(on_real), reduction="none")
                bce_fake = F.binary_cross_entropy_with_logits(on_fake, torch.zeros_like(on_fake), reduction="none")
                sums["d_accuracy"] += ((on_real > 0).float().mean(1).sum() + (on_fake < 0).float().mean(1).sum()
                                       ).item() / 2
                sums["d_real"] += torch.sigmoid(on_real).mean(1).sum().item()
                sums["d_fake"] += torch.sigmoid(on_fake).mean(1).sum().item()
                sums["d_loss"] += (bce_real.mean(1) + bce_fake.mean(1)).sum().item()
                sums["g_loss"] += F.softplus(-on_fake).mean(1).sum().item()  # BCE(D(G(z)), 1)
                count += n
        if count == 0:
            raise ConfigError("GAN.validate: the loader yielded no samples")
        return {k: v / count for k, v in sums.items()}

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | int | None = None, *, model: nn.Module | None = None,
               rng: torch.Generator | None = None) -> Tensor:
        """``n`` generated samples, the generator in eval mode (its modes restored afterwards), without gradients.

        Args:
            n: how many samples.
            y: the labels of a conditional GAN: an ``(n,)`` tensor or one class for all.
            model: the generator; default the one this regime was fitted with.
            rng: a ``torch.Generator`` (on the CPU) for reproducible noise; default the global random stream.
        """
        generator = model if model is not None else self._generator
        if generator is None:
            raise ConfigError("GAN.sample needs the generator: pass model=..., or fit the regime first")
        from robustlab.common.engine import model_device

        device = model_device(generator)
        if self.conditional:
            if y is None:
                raise ConfigError("a conditional GAN samples given labels y")
            y = torch.full((n,), y, dtype=torch.long) if isinstance(y, int) else torch.as_tensor(y)
            y = y.to(device)
        else:
            y = None
        with model_mode(generator, "eval"):
            return self._generate(generator, self.noise(n, device, rng=rng), y)
