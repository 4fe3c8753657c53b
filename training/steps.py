"""The step loop both GAN trainers share: progress bar, loss history (refusing non-finite losses), sample grids and
checkpoints at their intervals. A trainer brings ``config`` (steps, log_every, sample_every, checkpoint_every),
``step``, ``history``, ``out``, ``progress``, and ``train_step()``, ``sample_grid(path)``, ``save_checkpoint()``."""
from __future__ import annotations

import time

import numpy as np
from tqdm import tqdm


def _all_agree(flag: bool) -> bool:
    """True when any process of a distributed run says so (every rank then stops at the same step); the flag itself
    when there is only one process."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def run_steps(trainer, desc: str, is_main: bool = True) -> bool:
    """Step ``trainer`` from its current step to ``config.steps``, or until ``config.max_minutes`` of wall time have
    passed (then it checkpoints where it is); only ``is_main`` (rank 0) draws sample grids. Returns True when all
    ``steps`` are done."""
    c = trainer.config
    bar = tqdm(total=c.steps, initial=trainer.step, desc=desc, unit="step", disable=not trainer.progress,
               dynamic_ncols=True)
    t0 = time.perf_counter()
    budget = getattr(c, "max_minutes", None)
    while trainer.step < c.steps:
        losses = trainer.train_step()
        bar.update(1)
        out_of_time = budget is not None and _all_agree(time.perf_counter() - t0 >= 60 * budget)
        step = trainer.step
        out_of_time = out_of_time and step < c.steps  # the last step done on time is a finished run
        last = step == c.steps or out_of_time
        if step % c.log_every == 0 or last:
            if any(not np.isfinite(v) for v in losses.values()):
                raise FloatingPointError(f"non-finite loss at step {step}: {losses}")
            trainer.history.append({"step": step, **{k: round(v, 5) for k, v in losses.items()},
                                    "s": round(time.perf_counter() - t0, 2)})
            bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()})
        if is_main and (step % c.sample_every == 0 or last):
            trainer.sample_grid(trainer.out / "samples" / f"step{step:07d}.png")
        if step % c.checkpoint_every == 0 or last:
            trainer.save_checkpoint()
        if out_of_time:
            bar.close()
            print(f"{desc}: stopped at step {step}/{c.steps} after max_minutes {budget:g}; the same command "
                  "continues from the checkpoint")
            return False
    bar.close()
    return True
