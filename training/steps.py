"""The step loop both GAN trainers share: progress bar, loss history (refusing non-finite losses), sample grids and
checkpoints at their intervals. A trainer brings ``config`` (steps, log_every, sample_every, checkpoint_every),
``step``, ``history``, ``out``, ``progress``, and ``train_step()``, ``sample_grid(path)``, ``save_checkpoint()``."""
from __future__ import annotations

import time

import numpy as np
from tqdm import tqdm


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
        out_of_time = budget is not None and time.perf_counter() - t0 >= 60 * budget
        step, last = trainer.step, trainer.step == c.steps or out_of_time
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
