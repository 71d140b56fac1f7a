"""python -m trainer.tools.bench --time-to-quality MINUTES: the minutes a fresh run of the
README's train command takes to reach 30x, 10x and 2x the real-data floor's Frechet
distance.

The training runs in the foreground (its log on this terminal); the figures are the
trainer's own per-epoch quality probe, read back from its TensorBoard events, so no
second process competes with it for the CPU.
"""

import os
import time

import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from trainer.evaluation import evaluate
from trainer.tools.child import data_flag, run_child

RATIOS = (30, 10, 2)  # the crossings reported, as multiples of the real-data floor


def measure(data_dir, minutes: float, folder: str, extra_flags=()) -> dict:
    """Trains from scratch with the README's command (into `folder`) for `minutes`, and
    reads the minutes until the per-epoch Frechet distance fell below each of RATIOS
    times the real-data floor.

    The per-epoch figure is the trainer's own quality probe (--eval-samples images,
    costing a few percent of an epoch), so nothing competes with training for the CPU.
    On its 2,000 samples the distance reads higher than on 10,000, so the crossing
    times are upper bounds; the final checkpoint is also judged on 10,000 samples.
    `extra_flags` go to the training command after the README's.
    """
    log_dir = os.path.join(folder, "log")
    started = time.time()
    child = run_child(
        [
            "--checkpoint-dir",
            os.path.join(folder, "ckpt"),
            "--log-dir",
            log_dir,
            "--num-epochs",
            "1000",
            *extra_flags,
        ]
        + data_flag(data_dir),
        timeout=minutes * 60,
        show_log=True,
    )
    # The final judgement computes the real-data floor (seed 0, as --evaluate does).
    final = evaluate.run(
        data_dir,
        evaluate.FLOOR_IMAGES,
        seed=0,
        checkpoint_dir=os.path.join(folder, "ckpt"),
        check_copies=False,
    )
    floor = final["real_floor"]["frechet_distance"]
    rows = [
        {
            "minutes": (wall_time - started) / 60,
            "step": step,
            "frechet_distance": fd,
            "over_floor": fd / floor,
        }
        for wall_time, step, fd in scalar_events(log_dir, "eval/frechet_distance")
    ]
    return {
        "floor": floor,
        "epochs": rows,
        "train_minutes": child["seconds"] / 60,
        **{f"minutes_to_{ratio}x_floor": minutes_below(rows, ratio) for ratio in RATIOS},
        "final_frechet_distance_10k": final["generated"]["frechet_distance"],
        "final_10k": final["generated"],
        "final_over_floor_10k": final["fd_over_floor"],
    }


def minutes_below(rows: list, ratio: float):
    """Minutes of the first row whose distance is under `ratio` x the floor, or None."""
    return next((row["minutes"] for row in rows if row["over_floor"] < ratio), None)


def scalar_events(log_dir: str, tag: str) -> list:
    """(wall_time, step, value) of every `tag` summary under log_dir, in step order."""
    events = event_accumulator.EventAccumulator(
        log_dir, size_guidance={event_accumulator.TENSORS: 0}
    )
    events.Reload()
    if tag not in events.Tags()[event_accumulator.TENSORS]:
        return []
    return sorted(
        (e.wall_time, e.step, float(tf.make_ndarray(e.tensor_proto))) for e in events.Tensors(tag)
    )


def format_table(results: dict) -> str:
    lines = [
        f"real-data floor (10,000 training images): {results['floor']:.3f}",
        f"{'minutes':>8}{'step':>8}{'Frechet distance':>18}{'x floor':>9}",
    ]
    lines += [
        f"{row['minutes']:>8.1f}{row['step']:>8}{row['frechet_distance']:>18.3f}"
        f"{row['over_floor']:>9.1f}"
        for row in results["epochs"]
    ]
    for ratio in RATIOS:
        reached = results[f"minutes_to_{ratio}x_floor"]
        lines.append(
            f"below {ratio}x the floor: "
            + (f"{reached:.1f} minutes" if reached is not None else "not reached")
        )
    lines.append(
        f"final checkpoint on 10,000 samples: Frechet distance "
        f"{results['final_frechet_distance_10k']:.3f} "
        f"({results['final_over_floor_10k']:.1f}x the floor)"
    )
    return "\n".join(lines)
