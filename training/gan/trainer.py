"""Train a GAN from a config: checkpoints, resume, EMA, sample grids, DDP, metrics at the end.

Runs on one CPU/GPU, or unchanged under ``torchrun`` (DistributedDataParallel; NCCL on GPUs, gloo on the
CPU). Each rank draws its own batches from a seeded generator; rank 0 alone writes. A checkpoint holds
everything a step depends on (weights, EMA, optimisers, every RNG state, the sampler's generator), is
written atomically every ``checkpoint_every`` steps, and a rerun of the same command continues from it:
a run killed at any moment loses at most one interval, and the resumed run takes the same steps it would
have taken uninterrupted.
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from training.gan.config import GANConfig
from training.gan.diffaug import diff_augment
from training.gan.models import build_models
from training.gan.losses import d2d_ce, d_hinge, g_hinge
from training.gan.sampling import read_checkpoint, save_grid
from training.gan.pose_maps import flip_keypoints, pose_maps
from training.hand_crops import HandCrops, load_hand_crops
from training.splits import limit_per_class
from training.train_j2s import resolve_device
from training.io import atomic_torch_save, restore_rng, rng_state
from training.steps import run_steps


def resolve_dataset(name_or_path: str, datasets: str | os.PathLike | None = None) -> Path:
    p = Path(name_or_path)
    if p.is_dir():
        return p
    root = datasets or os.environ.get("FINGERSPELL_DATASETS")
    if root and (Path(root) / name_or_path).is_dir():
        return Path(root) / name_or_path
    raise FileNotFoundError(f"dataset {name_or_path!r} not found: give a folder, or set FINGERSPELL_DATASETS "
                            f"(or --datasets) to the folder that holds it")


def training_set(config: GANConfig, datasets=None, cache_dir=None, progress: bool = True) -> HandCrops:
    """The real crops a GAN learns from: the config's classes, minus held-out signers, optionally K per class."""
    crops = load_hand_crops(resolve_dataset(config.dataset, datasets), config.size, config.crop,
                            labels=config.labels, cache_dir=cache_dir, progress=progress)
    keep = ~np.isin(crops.signers, config.exclude_signers) if config.exclude_signers else np.ones(len(crops), bool)
    if config.model == "spade":
        keep &= crops.has_pose
    idx = np.flatnonzero(keep)
    if config.per_class:
        idx = limit_per_class(crops.labels, idx, config.per_class, seed=config.seed)
    if not len(idx):
        raise ValueError(f"no training images left in {config.dataset} after the config's filters")
    return crops.subset(idx)


def _unwrap(m: nn.Module) -> nn.Module:
    return m.module if hasattr(m, "module") else m


class GANTrainer:
    """``GANTrainer(config, out).train()``; the data is given or loaded from the config."""

    def __init__(self, config: GANConfig, out: str | os.PathLike, data: HandCrops | None = None,
                 datasets=None, cache_dir=None, progress: bool = True):
        self.config, self.out = config, Path(out)
        self.distributed = dist.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.distributed and not dist.is_initialized():
            backend = "nccl" if (config.device != "cpu" and torch.cuda.is_available()) else "gloo"
            dist.init_process_group(backend)
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        if self.distributed and torch.cuda.is_available() and config.device != "cpu":
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            self.device = torch.device("cuda", local)
        else:
            self.device = resolve_device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.progress = progress and self.rank == 0
        self.data = data if data is not None else training_set(config, datasets, cache_dir, self.progress)
        self.classes = sorted(set(self.data.labels.tolist()))
        self.class_index = {c: i for i, c in enumerate(self.classes)}
        self.images = torch.from_numpy(self.data.images).permute(0, 3, 1, 2).contiguous().to(self.device)  # uint8
        self.labels = torch.tensor([self.class_index[c] for c in self.data.labels], device=self.device)
        self.keypoints = torch.from_numpy(np.nan_to_num(self.data.keypoints)).to(self.device)

        torch.manual_seed(config.seed)
        self.G, self.D = build_models(config, len(self.classes))
        self.G.to(self.device), self.D.to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.G, self.D = DDP(self.G, device_ids=ids), DDP(self.D, device_ids=ids)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=config.lr_g, betas=config.betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=config.lr_d, betas=config.betas)
        self.sampler = torch.Generator().manual_seed(config.seed * 1000 + self.rank)  # on the CPU: portable state
        torch.manual_seed(config.seed * 1000 + self.rank)  # z and DiffAugment draws differ per rank
        self.step = 0
        self.history: list[dict] = []
        self.fixed = self._fixed_inputs()
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
        self.resumed = self.load_checkpoint()

    # -- data -----------------------------------------------------------------------------------------
    def _pose(self, keypoints: torch.Tensor) -> torch.Tensor:
        return pose_maps(keypoints, self.config.size, self.config.pose)

    def real_batch(self):
        """A batch of real images in -1..1 with labels and (SPADE) pose maps, flipped at random."""
        n = self.config.batch_size
        idx = torch.randint(len(self.labels), (n,), generator=self.sampler).to(self.device)
        flip = (torch.rand(n, generator=self.sampler) < 0.5).to(self.device) if self.config.flip else None
        x = self.images[idx].float() / 127.5 - 1
        kp = self.keypoints[idx]
        if flip is not None:
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            kp = torch.where(flip[:, None, None], flip_keypoints(kp), kp)
        pose = self._pose(kp) if self.config.model == "spade" else None
        return x, self.labels[idx], pose

    def fake_conditions(self, n: int):
        """What the generator is asked for: random classes (ReACGAN) or the poses of random real images (SPADE)."""
        if self.config.model == "reacgan":
            y = torch.randint(len(self.classes), (n,), generator=self.sampler).to(self.device)
            return y, y
        idx = torch.randint(len(self.labels), (n,), generator=self.sampler).to(self.device)
        return self._pose(self.keypoints[idx]), self.labels[idx]

    def _fixed_inputs(self):
        """The same z and conditions for every sample grid: one row per class, 8 columns."""
        g = torch.Generator().manual_seed(1234)
        rows = []
        for c in range(len(self.classes)):
            members = torch.nonzero(self.labels.cpu() == c).flatten()
            rows.append(members[torch.randint(len(members), (8,), generator=g)])
        idx = torch.cat(rows)
        z = torch.randn(len(idx), self.config.z_dim, generator=g).to(self.device)
        cond = (self.labels[idx.to(self.device)] if self.config.model == "reacgan"
                else self._pose(self.keypoints[idx.to(self.device)]))
        return z, cond, idx

    # -- one step -------------------------------------------------------------------------------------
    def _d_input(self, x: torch.Tensor, pose: torch.Tensor | None) -> torch.Tensor:
        if pose is not None:
            x = torch.cat([x, pose], dim=1)
        return diff_augment(x, tuple(self.config.diffaug)) if self.config.diffaug else x

    def train_step(self) -> dict:
        c, n = self.config, self.config.batch_size
        reacgan = c.model == "reacgan"
        self.G.train(), self.D.train()
        for _ in range(c.d_steps):
            real, y_real, pose_real = self.real_batch()
            cond, y_fake = self.fake_conditions(n)
            with torch.no_grad():
                fake = self.G(torch.randn(n, c.z_dim, device=self.device), cond)
            pose_fake = None if reacgan else cond
            x = torch.cat([self._d_input(real, pose_real), self._d_input(fake, pose_fake)])
            out = self.D(x, torch.cat([y_real, y_fake]) if reacgan else None)
            loss_adv = d_hinge(out["adv"][:n], out["adv"][n:])
            loss_cond = (d2d_ce(out["embed"][:n], out["proxy"][:n], y_real, c.temperature, c.m_p, c.m_n)
                         if reacgan else torch.zeros((), device=self.device))
            loss_d = loss_adv + c.cond_lambda * loss_cond
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
        cond, y_fake = self.fake_conditions(n)
        fake = self.G(torch.randn(n, c.z_dim, device=self.device), cond)
        out = self.D(self._d_input(fake, None if reacgan else cond), y_fake if reacgan else None)
        g_adv = g_hinge(out["adv"])
        g_cond = (d2d_ce(out["embed"], out["proxy"], y_fake, c.temperature, c.m_p, c.m_n)
                  if reacgan else torch.zeros((), device=self.device))
        loss_g = g_adv + c.cond_lambda * g_cond
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self._update_ema()
        self.step += 1
        return {"d_adv": loss_adv.item(), "d_cond": loss_cond.item(), "g_adv": g_adv.item(),
                "g_cond": g_cond.item()}

    @torch.no_grad()
    def _update_ema(self) -> None:
        g = _unwrap(self.G)
        decay = self.config.ema_decay if self.step >= self.config.ema_start else 0.0
        for pe, p in zip(self.G_ema.parameters(), g.parameters()):
            pe.lerp_(p, 1 - decay)
        for be, b in zip(self.G_ema.buffers(), g.buffers()):
            be.copy_(b)

    # -- checkpoints ----------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"config": self.config.to_dict(), "step": self.step, "classes": self.classes,
                "dataset": self.data.dataset, "data_sha256": self.data.data_sha256,
                "G": _unwrap(self.G).state_dict(), "D": _unwrap(self.D).state_dict(),
                "G_ema": self.G_ema.state_dict(), "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "rng": rng_state(self.sampler),
                "history": self.history}

    def save_checkpoint(self) -> None:
        if self.rank == 0:
            atomic_torch_save(self.state(), self.out / "checkpoint.pt")

    def load_checkpoint(self) -> bool:
        path = self.out / "checkpoint.pt"
        if not path.exists():
            return False

        ck = read_checkpoint(path, self.device)
        saved = GANConfig.from_dict(ck["config"])
        for key in ("model", "dataset", "size", "crop", "z_dim", "g_ch", "d_ch", "pose", "labels", "per_class",
                    "exclude_signers", "embed_dim", "spade_hidden", "g_sn", "seed"):
            if getattr(saved, key) != getattr(self.config, key):
                raise ValueError(f"{path} was trained with {key}={getattr(saved, key)!r}, the config now says "
                                 f"{getattr(self.config, key)!r}: use another --out, or delete the checkpoint")
        if ck["classes"] != self.classes:
            raise ValueError(f"{path} was trained on classes {ck['classes']}, the data now has {self.classes}")
        _unwrap(self.G).load_state_dict(ck["G"])
        _unwrap(self.D).load_state_dict(ck["D"])
        self.G_ema.load_state_dict(ck["G_ema"])
        self.opt_g.load_state_dict(ck["opt_g"])
        self.opt_d.load_state_dict(ck["opt_d"])
        restore_rng(ck["rng"], self.sampler)
        self.step, self.history = ck["step"], ck["history"]
        if self.distributed:  # every rank restored rank 0's RNG; re-split the streams so ranks still differ
            torch.manual_seed(self.config.seed * 1000 + self.rank + 7919 * self.step)
            self.sampler.manual_seed(self.config.seed * 1000 + self.rank + 7919 * self.step)
        return True

    # -- outputs --------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_grid(self, path: Path) -> None:

        z, cond, idx = self.fixed
        fake = self.G_ema(z, cond)
        rows = [self.classes[i // 8] for i in range(0, len(idx), 8)]
        if self.config.model == "spade":  # show the real image whose pose was used beside each row
            real = self.images[idx.to(self.device)].float() / 127.5 - 1
            fake = torch.stack([real, fake], 1).flatten(0, 1)
            save_grid(fake, path, 16, rows)
        else:
            save_grid(fake, path, 8, rows)

    def train(self) -> Path:
        c = self.config
        (self.out / "samples").mkdir(exist_ok=True) if self.rank == 0 else None
        if self.rank == 0:
            (self.out / "config.json").write_text(json.dumps(c.to_dict(), indent=1))
        self.finished = run_steps(self, f"{c.name} ({c.model})", is_main=self.rank == 0)  # False: stopped on time
        if self.rank == 0:
            self.save_checkpoint()
            self.sample_grid(self.out / "samples.png")
            from training.gan.plots import plot_gan_history

            plot_gan_history(self.history, self.out / "losses.png")
        if self.distributed:
            dist.barrier()
        return self.out / "checkpoint.pt"
