"""Train H-GAN from a config: two generators (synthetic->real G_r, real->synthetic G_s), two discriminators,
CycleGAN's schedule (generators, then discriminators on a history pool of fakes), EMA of G_r, sample grids.

A checkpoint holds everything a step depends on (weights, EMA, optimisers, the fake pools, every RNG state) and
is written atomically every ``checkpoint_every`` steps; rerunning the same command continues from it and takes
the same steps an unbroken run would have taken.
"""
from __future__ import annotations

import copy
import json
import os
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from training.hgan.config import HGANConfig
from training.hgan.data import SyntheticHands, real_crops, synthetic_hands
from training.hgan.losses import cycle_loss, identity_loss, lsgan_d, lsgan_g
from training.hgan.networks import (FrozenFeatures, HandCNNFeatures, ResnetGenerator, VGG16Features,
                                    build_discriminator, xavier_init)
from training.io import atomic_torch_save, restore_rng, rng_state
from training.steps import run_steps

HGAN_PANELS = (("least squares", ("g_adv", "d_real", "d_syn")), ("cycle and identity (L1)", ("cycle", "identity")))
SAVED_KEYS = ("dataset", "size", "labels", "exclude_signers", "ngf", "blocks", "discriminator", "ndf",
              "patch_layers", "features", "vgg16_weights", "mask_refine", "seed", "synthetic", "background")


def perceptual_features(config: HGANConfig, datasets=None, cache_dir=None, progress: bool = True,
                        device: str = "cpu") -> FrozenFeatures:
    """The frozen network of the perceptual discriminator: the user's VGG-16 weights, a given 'cnn' classifier, or
    a hand CNN trained once on the real crops (seed 1: a different network from the metrics' evaluator, seed 0)."""
    if config.vgg16_weights:
        return VGG16Features(config.vgg16_weights)
    if config.features:
        return HandCNNFeatures.load(config.features)
    from training.gan.config import GANConfig
    from training.gan.metrics import ensure_evaluator

    gan_like = GANConfig(dataset=config.dataset, size=config.size, labels=config.labels,
                         exclude_signers=list(config.exclude_signers))
    clf = ensure_evaluator(gan_like, datasets, cache_dir, root="runs/perceptual", progress=progress, seed=1,
                           device=device)
    return HandCNNFeatures(clf.model.body)


def refine(translated: torch.Tensor, source: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mask refinement (paper 001): the translation is kept on the rendered hand (its mask grown by one pixel, so
    the outline may change a little) and the rendered background elsewhere. ``mask``: (B, 1, S, S) in 0..1."""
    if mask is None:
        return translated
    m = F.max_pool2d(mask, 3, 1, 1)
    return m * translated + (1 - m) * source


class ImagePool:
    """CycleGAN's history of generated images: the discriminators see older fakes too, which steadies training."""

    def __init__(self, size: int):
        self.size, self.images = size, []

    def query(self, batch: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return batch
        out = []
        for img in batch.detach():
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif random.random() < 0.5:
                i = random.randrange(self.size)
                out.append(self.images[i].clone())
                self.images[i] = img.clone()
            else:
                out.append(img)
        return torch.stack(out)

    def state(self):
        return torch.stack(self.images).cpu() if self.images else None

    def load(self, t, device) -> None:
        self.images = [] if t is None else [x.to(device) for x in t]


class HGANTrainer:
    """``HGANTrainer(config, out).train()``; the domains are given (tests) or loaded from the config."""

    def __init__(self, config: HGANConfig, out: str | os.PathLike, real=None, synthetic: SyntheticHands | None = None,
                 features: FrozenFeatures | None = None, datasets=None, cache_dir=None, progress: bool = True):
        from training.train_j2s import resolve_device

        self.config, self.out, self.progress = config, Path(out), progress
        self.device = resolve_device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.real = real if real is not None else real_crops(config, datasets, cache_dir, progress)
        self.synthetic = synthetic if synthetic is not None else synthetic_hands(config, out, datasets, cache_dir,
                                                                                 progress)
        to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).contiguous()  # noqa: E731
        self.real_images = to_t(self.real.images).to(self.device)  # uint8
        self.syn_images = to_t(self.synthetic.images).to(self.device)
        self.syn_masks = torch.from_numpy(self.synthetic.masks)[:, None].to(self.device)

        torch.manual_seed(config.seed)
        if config.discriminator == "perceptual" and features is None:
            features = perceptual_features(config, datasets, cache_dir, progress, str(self.device))
        self.G_r, self.G_s = (ResnetGenerator(config.ngf, config.blocks) for _ in range(2))
        self.D_r, self.D_s = (build_discriminator(config.discriminator, config.ndf,
                                                  copy.deepcopy(features) if features is not None else None,
                                                  config.patch_layers) for _ in range(2))
        for m in (self.G_r, self.G_s, self.D_r, self.D_s):
            xavier_init(m)
            m.to(self.device)
        self.G_ema = copy.deepcopy(self.G_r).eval().requires_grad_(False)
        trainable = lambda *ms: [p for m in ms for p in m.parameters() if p.requires_grad]  # noqa: E731
        self.d_params = trainable(self.D_r, self.D_s)  # not the frozen feature nets, which stay frozen
        self.opt_g = torch.optim.Adam(trainable(self.G_r, self.G_s), lr=config.lr, betas=config.betas)
        self.opt_d = torch.optim.Adam(self.d_params, lr=config.lr, betas=config.betas)
        self.pool_r, self.pool_s = ImagePool(config.pool_size), ImagePool(config.pool_size)
        self.sampler = torch.Generator().manual_seed(config.seed)
        random.seed(config.seed)
        self.step, self.history = 0, []
        self.out.mkdir(parents=True, exist_ok=True)
        self.resumed = self.load_checkpoint()

    # -- data -----------------------------------------------------------------------------------------
    def batches(self):
        """A real batch (randomly flipped) and a synthetic batch with its masks, in -1..1 / 0..1."""
        n = self.config.batch_size
        ri = torch.randint(len(self.real_images), (n,), generator=self.sampler).to(self.device)
        si = torch.randint(len(self.syn_images), (n,), generator=self.sampler).to(self.device)
        flip = (torch.rand(n, generator=self.sampler) < 0.5).to(self.device)
        real = self.real_images[ri].float() / 127.5 - 1
        if self.config.flip:
            real = torch.where(flip[:, None, None, None], real.flip(3), real)
        syn = self.syn_images[si].float() / 127.5 - 1
        mask = self.syn_masks[si].float() / 255 if self.config.mask_refine else None
        return real, syn, mask

    def to_real(self, syn: torch.Tensor, mask: torch.Tensor | None, G: nn.Module | None = None) -> torch.Tensor:
        return refine((G or self.G_r)(syn), syn, mask)

    # -- one step -------------------------------------------------------------------------------------
    def train_step(self) -> dict:
        c = self.config
        real, syn, mask = self.batches()
        for m in (self.G_r, self.G_s, self.D_r, self.D_s):
            m.train()
        # generators
        for p in self.d_params:
            p.requires_grad_(False)
        fake_r = self.to_real(syn, mask)
        fake_s = self.G_s(real)
        rec_s = self.G_s(fake_r)
        rec_r = self.G_r(fake_s)
        g_adv = lsgan_g(self.D_r(fake_r)) + lsgan_g(self.D_s(fake_s))
        g_cyc = cycle_loss(rec_s, syn) + cycle_loss(rec_r, real)
        g_idt = (identity_loss(self.G_r(real), real) + identity_loss(self.G_s(syn), syn)
                 if c.lambda_identity > 0 else torch.zeros((), device=self.device))
        loss_g = g_adv + c.lambda_cycle * g_cyc + c.lambda_cycle * c.lambda_identity * g_idt
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        # discriminators, on pooled fakes
        for p in self.d_params:
            p.requires_grad_(True)
        past_r, past_s = self.pool_r.query(fake_r), self.pool_s.query(fake_s)
        d_r = lsgan_d(self.D_r(real), self.D_r(past_r))
        d_s = lsgan_d(self.D_s(syn), self.D_s(past_s))
        self.opt_d.zero_grad(set_to_none=True)
        (d_r + d_s).backward()
        self.opt_d.step()
        self._update_ema()
        self.step += 1
        return {"g_adv": g_adv.item(), "cycle": g_cyc.item(), "identity": g_idt.item(), "d_real": d_r.item(),
                "d_syn": d_s.item()}

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.config.ema_decay if self.step >= self.config.ema_start else 0.0
        for pe, p in zip(self.G_ema.parameters(), self.G_r.parameters()):
            pe.lerp_(p, 1 - decay)

    # -- checkpoints ----------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"config": self.config.to_dict(), "step": self.step, "kind": "hgan",
                "dataset": getattr(self.real, "dataset", None), "data_sha256": getattr(self.real, "data_sha256", None),
                "G_r": self.G_r.state_dict(), "G_s": self.G_s.state_dict(), "D_r": self.D_r.state_dict(),
                "D_s": self.D_s.state_dict(), "G_ema": self.G_ema.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "pools": [self.pool_r.state(), self.pool_s.state()],
                "rng": rng_state(self.sampler),
                "history": self.history}

    def save_checkpoint(self) -> None:
        atomic_torch_save(self.state(), self.out / "checkpoint.pt")

    def load_checkpoint(self) -> bool:
        path = self.out / "checkpoint.pt"
        if not path.exists():
            return False
        try:
            ck = torch.load(path, map_location=self.device, weights_only=False)
        except Exception as e:  # a truncated or foreign file: say which, do not train over it
            raise ValueError(f"{path} cannot be read ({e}); move it away to start afresh") from e
        if ck.get("kind") != "hgan":
            raise ValueError(f"{path} is not an H-GAN checkpoint")
        saved = ck["config"]
        for key in SAVED_KEYS:
            if saved.get(key) != self.config.to_dict().get(key):
                raise ValueError(f"{path} was trained with {key}={saved.get(key)!r}, the config now says "
                                 f"{self.config.to_dict().get(key)!r}: use another --out, or delete the checkpoint")
        for name in ("G_r", "G_s", "D_r", "D_s", "G_ema"):
            getattr(self, name).load_state_dict(ck[name])
        self.opt_g.load_state_dict(ck["opt_g"])
        self.opt_d.load_state_dict(ck["opt_d"])
        self.pool_r.load(ck["pools"][0], self.device)
        self.pool_s.load(ck["pools"][1], self.device)
        restore_rng(ck["rng"], self.sampler)
        self.step, self.history = ck["step"], ck["history"]
        return True

    # -- outputs --------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_grid(self, path: Path, n: int = 12) -> None:
        """Three rows: rendered hands, their translation (EMA generator), and the nearest real crop to each
        translation (pixels), so a reader can see whether the output looks like the real domain."""
        from training.gan.sampling import save_grid

        g = torch.Generator().manual_seed(4321)
        idx = torch.randint(len(self.syn_images), (n,), generator=g).to(self.device)
        syn = self.syn_images[idx].float() / 127.5 - 1
        mask = self.syn_masks[idx].float() / 255 if self.config.mask_refine else None
        fake = self.to_real(syn, mask, self.G_ema)
        real = self.real_images.float() / 127.5 - 1
        nearest = torch.cdist(fake.flatten(1), real.flatten(1)).argmin(1)
        save_grid(torch.cat([syn, fake, real[nearest]]), path, n, ["syn", "H-GAN", "real"], scale=3)

    def train(self) -> Path:
        c = self.config
        (self.out / "samples").mkdir(exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(c.to_dict(), indent=1))
        self.finished = run_steps(self, f"{c.name} (H-GAN, {c.discriminator})")  # False: stopped on max_minutes
        self.save_checkpoint()
        self.sample_grid(self.out / "samples.png")
        from training.gan.plots import plot_gan_history

        plot_gan_history(self.history, self.out / "losses.png", HGAN_PANELS)
        return self.out / "checkpoint.pt"

