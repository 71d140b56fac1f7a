"""Command line: parse flags into a TrainConfig, set up logging, dispatch to a mode.

python -m trainer.task --data-dir DIR              # train
python -m trainer.task --continue-train True       # resume the run in --checkpoint-dir
python -m trainer.task --sample 64                 # PNGs from the latest checkpoint
python -m trainer.task --evaluate                  # quality of the latest checkpoint
python -m trainer.task --interpolate 8 --gif       # latent walks as a PNG and a GIF
python -m trainer.task --progress-gif              # a run's grids as progress.gif
python -m trainer.task --export DIR --tflite       # a SavedModel (and .tflite) to serve
"""

import dataclasses
import logging
import os
import sys

from trainer import cli, flags
from trainer.errors import TrainerError

# Each mode's module is imported when that mode runs: --help and usage errors answer
# without loading TensorFlow, and --sample without the training code.


def main(argv=None) -> int:
    cli.setup_logging()
    parser = flags.build_parser()
    args = parser.parse_args(flags.attach_negative_values(sys.argv[1:] if argv is None else argv))
    try:
        flags.check_modes(args)
        config = flags.resolve(args, os.environ)
    except ValueError as err:
        parser.error(flags.as_flag(str(err)))  # usage error: exit 2
    except TrainerError as err:
        return cli.fail(err)
    try:
        if "dataset" in vars(args) and ("sample" in vars(args) or "interpolate" in vars(args)):
            flags.check_dataset(config.checkpoint_dir, args.dataset)
        if "sample" in vars(args):
            from trainer import sample

            digit = flags.class_index(config.checkpoint_dir, vars(args).get("digit"))
            paths = sample.write_samples(
                config.checkpoint_dir, config.sample_dir, args.sample, config.seed, digit
            )
            print(
                f"wrote {len(paths)} samples"
                + ("" if digit is None else f" of class {digit}")
                + f" and grid.png to {config.sample_dir}"
            )
            return 0
        if "evaluate" in vars(args):
            return _evaluate(args, config)
        if "interpolate" in vars(args):
            return _interpolate(args, config)
        if "progress_gif" in vars(args):
            from trainer import animation

            print(f"wrote {animation.write_progress_gif(config.log_dir)}")
            return 0
        if "export" in vars(args):
            from trainer import export

            print(
                "exported the generator to "
                + export.export(
                    config.checkpoint_dir,
                    args.export,
                    "tflite" in vars(args),
                    config.overwrite,
                )
            )
            return 0
        if "probe" in vars(args):
            from trainer.evaluation import probe

            print(probe.format_table(probe.run(config.checkpoint_dir, config.data_dir)))
            return 0
        return _train(args, config)
    except TrainerError as err:
        return cli.fail(err)


_SIGNALS = {"SIGINT": 2, "SIGTERM": 15}


def _train(args, config) -> int:
    from trainer import distribute, hardware, train

    # First: a multi-worker strategy must start before anything else uses TensorFlow.
    strategy = distribute.from_environment(vars(args).get("strategy", "auto"), os.environ)
    logging.info("strategy: %s", distribute.describe(strategy))
    if not distribute.is_chief(strategy):
        logging.info("progress is logged by the chief; this worker logs warnings only")
        logging.getLogger().setLevel(logging.WARNING)
    precision = hardware.log_choice(config.precision, hardware.detect(os.environ))
    result = train.run(dataclasses.replace(config, resolved_precision=precision), strategy=strategy)
    if not result["interrupted"]:
        return 0
    if distribute.is_multi_worker(strategy):
        return distribute.RESTART_EXIT_CODE  # every worker, so the job restarts whole
    return 128 + _SIGNALS.get(result["interrupted"], 15)


def _evaluate(args, config) -> int:
    from trainer.evaluation import evaluate

    results = evaluate.run(
        config.data_dir,
        vars(args).get("num_eval_samples", 10_000),
        config.seed,
        checkpoint_dir=config.checkpoint_dir,
        png_folder=args.evaluate or None,
        dataset=vars(args).get("dataset"),
        judge_path=vars(args).get("judge"),
    )
    print(evaluate.format_table(results))
    print(evaluate.to_json(results))
    return 0


def _interpolate(args, config) -> int:
    from trainer import interpolate

    paths = interpolate.write_walks(
        config.checkpoint_dir,
        config.sample_dir,
        args.interpolate,
        config.seed,
        spherical="slerp" in vars(args),
        gif="gif" in vars(args),
        digit=flags.class_index(config.checkpoint_dir, vars(args).get("digit")),
    )
    names = [os.path.basename(p) for p in paths]
    names = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
    print(
        f"wrote {names} ({args.interpolate} walks of {interpolate.STEPS} steps) to "
        f"{config.sample_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
