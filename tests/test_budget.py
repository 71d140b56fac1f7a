"""--time-budget: durations, the planner against a fake clock, and budgeted runs."""

import logging
import re

import numpy as np
import pytest
import tensorflow as tf
from helpers import TINY_FLAGS, replace, resolved

from trainer import budget, task, train, train_config, train_state
from trainer.errors import TrainerError
from trainer.train import learning_rate_scale


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.mark.parametrize(
    "text, seconds", [("90s", 90), ("20m", 1200), ("1.5h", 5400), ("45", 45), (" 2m ", 120)]
)
def test_durations_in_seconds_minutes_and_hours(text, seconds):
    assert budget.parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text, message",
    [
        ("0", "no time at all"),
        ("0m", "no time at all"),
        ("-5m", "is not a duration"),
        ("10x", "is not a duration"),
        ("", "is not a duration"),
        ("5 minutes", "is not a duration"),
    ],
)
def test_bad_durations_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        budget.parse_duration(text)


@pytest.mark.parametrize("value", ["0", "-5m", "10x"])
def test_a_bad_budget_on_the_command_line_is_one_usage_line_naming_it(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        task.main(["--time-budget", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(
        f"error: --time-budget must be a positive duration: 90s, 20m or 1.5h, got '{value}'"
    )


@pytest.mark.parametrize("flag", ["--num-epochs", "--train-steps", "--lr-decay-epochs"])
def test_a_budget_refuses_the_flags_it_plans_itself(flag, capsys):
    with pytest.raises(SystemExit):
        task.main(["--time-budget", "20m", flag, "3"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"--time-budget plans the steps and their decay itself, so {flag} cannot" in err


def test_format_duration():
    assert [budget.format_duration(s) for s in (5, 95, 3700)] == ["5s", "1m35s", "1h01m40s"]


def planner(clock, seconds=100.0, spent=0.0, **kwargs):
    return budget.Planner(seconds, spent, clock=clock, **kwargs)


def test_steps_are_planned_from_the_pace_to_end_short_of_the_deadline():
    clock = FakeClock()
    plan = planner(clock, spent=10.0)  # 90 s left
    assert plan.left() == 90.0
    # Aim: 1 s (MARGIN of 100 s) short of the deadline, less the exit's EXIT_SECONDS.
    expected = (90.0 - 1.0 - budget.EXIT_SECONDS) / 0.1
    assert plan.plan(step=0, step_seconds=0.1) == pytest.approx(expected, abs=1)
    clock.now += 50.0
    assert plan.spent() == 60.0 and plan.left() == 40.0


def test_epoch_ends_and_checkpoints_on_the_way_are_paid_for():
    clock = FakeClock()
    plan = planner(clock, per_epoch=100, checkpoint_freq=50)
    plan.epoch_end_seconds, plan.save_seconds = 5.0, 1.0
    # A step costs 0.1 + 5 / 100 + 1 / 50 = 0.17 s; the end 1 + 5 s and the exit.
    expected = (99 - 6 - budget.EXIT_SECONDS) / 0.17
    assert plan.plan(0, 0.1) == pytest.approx(expected, abs=1)


def simulate(plan, pace_at, decay_share=0.4):
    """Steps a fake clock forward as train.py's loop does: plan after 16 steps, then
    check for drift at each step. Returns (last step, learning-rate scales)."""
    clock, at, scales = plan._clock, 0, []
    while plan.total is None or at < plan.total:
        seconds = pace_at(clock.now)
        if plan.total is not None:
            scales.append(learning_rate_scale(at, plan.total, round(decay_share * plan.total)))
        clock.now += seconds
        at += 1
        if plan.total is None and at == 16:
            plan.plan(at, seconds)
        elif plan.total is not None and at < plan.total:
            if plan.drifted(at, seconds):
                plan.plan(at, seconds)
    clock.now += plan.end_seconds()  # the final checkpoint, check and exit
    return at, scales


def test_a_pace_that_halves_is_re_planned_and_still_ends_inside_the_budget():
    clock = FakeClock()
    plan = planner(clock, seconds=600.0)
    start = clock.now
    half_time = start + 300.0  # another process takes half the cores from here
    last, _ = simulate(plan, lambda now: 0.1 if now < half_time else 0.2)
    assert plan.plans >= 2
    used = clock.now - start
    assert 0.97 * 600.0 <= used <= 600.0
    # Steps at the first pace for the first half, then at half of it.
    assert last == pytest.approx(3000 + 1500, rel=0.02)


def test_a_steady_pace_is_planned_once():
    clock = FakeClock()
    plan = planner(clock, seconds=600.0)
    simulate(plan, lambda now: 0.1)
    assert plan.plans == 1


def test_the_schedule_ends_at_the_last_planned_step():
    clock = FakeClock()
    plan = planner(clock, seconds=300.0)
    start = clock.now
    last, scales = simulate(plan, lambda now: 0.05 if now < start + 100 else 0.08)
    decay = round(0.4 * last)
    # The rates hold until the decay, then fall to 1 / decay on the last update.
    assert scales[-1] == pytest.approx(1 / decay)
    assert scales[: len(scales) // 2] == [1.0] * (len(scales) // 2)
    assert all(b <= a + 1e-9 for a, b in zip(scales[-decay // 2 :], scales[-decay // 2 + 1 :]))


def test_a_resume_spends_only_what_is_left():
    clock = FakeClock()
    plan = planner(clock, seconds=120.0, spent=100.0 + 3.0)  # checkpoint's 100 s, start-up 3
    assert plan.left() == 17.0
    plan.plan(0, 0.1)
    assert plan.total == pytest.approx((17.0 - 1.2 - budget.EXIT_SECONDS) / 0.1, abs=1)


def test_no_step_is_planned_when_the_end_alone_would_overrun():
    clock = FakeClock()
    plan = planner(clock, seconds=10.0, spent=9.0)
    plan.epoch_end_seconds = 5.0
    assert plan.plan(40, 0.1) == 40


def test_pace_averages_the_steps_of_its_window():
    pace = budget.Pace(window=0.95, least=4)
    for _ in range(20):
        pace.add(0.1)
    assert len(pace) == 10 and pace.seconds() == pytest.approx(0.1)
    for _ in range(10):
        pace.add(0.3)
    assert len(pace) == 4 and pace.seconds() == pytest.approx(0.3)


@pytest.fixture
def no_start_up(monkeypatch):
    """The process's age as a fresh command's (a test process is older than a budget),
    and a test's exit, which is not the process's."""
    monkeypatch.setattr(budget, "process_age", lambda clock=None: 0.0)
    monkeypatch.setattr(budget, "EXIT_SECONDS", 0.0)


def budgeted_run(tmp_path, blob_images, seconds="6s", **changes):
    from helpers import tiny_config

    config = replace(
        tiny_config(tmp_path), train_steps=None, time_budget=seconds, log_freq=50, **changes
    )
    return config, train.run(config, images=blob_images)


def planned_steps(text: str) -> list:
    return [int(n) for n in re.findall(r"to step (\d+)", text)]


def test_a_budgeted_run_ends_with_its_schedule_completed_at_its_planned_step(
    tmp_path, blob_images, no_start_up, caplog, monkeypatch
):
    # One plan: a stall on a loaded machine may re-plan the end to the current step,
    # which ends the run on time with its decay cut short, as a budget must. Re-plans
    # and the schedule they leave are tested above on a fake clock.
    monkeypatch.setattr(budget.Planner, "drifted", lambda self, step, seconds: False)
    with caplog.at_level(logging.INFO):
        config, result = budgeted_run(tmp_path, blob_images)
    planned = planned_steps(caplog.text)
    assert "time budget 6s" in caplog.text and planned, caplog.text
    assert result["step"] == planned[-1] > 10 and not result["interrupted"]
    assert result["checkpoint"].endswith(f"ckpt-{planned[-1]}")
    # The rate's last update is the decay's last: 1 / (its share of the planned steps).
    decay = round(config.lr_decay_share * planned[-1])
    assert result["learning_rate"] == pytest.approx(config.learning_rate / decay)
    state = train_state.build_state(config)
    train_state.restore(state, config.checkpoint_dir)
    assert 0 < float(state.elapsed.numpy())  # the time spent is in the checkpoint
    assert "spent" in caplog.text and "of the 6s budget" in caplog.text


def test_a_resume_spends_what_is_left_of_the_budget(tmp_path, blob_images, no_start_up, caplog):
    config, first = budgeted_run(tmp_path, blob_images, "5s")
    state = train_state.build_state(config)
    train_state.restore(state, config.checkpoint_dir)
    spent = float(state.elapsed.numpy())
    caplog.clear()
    more = replace(config, continue_train=True, time_budget=f"{spent + 4:.1f}s")
    with caplog.at_level(logging.INFO):
        second = train.run(more, images=blob_images)
    left = re.search(r"training for \S+ \((\d+)s left\)", caplog.text)
    assert left and int(left.group(1)) <= 4, caplog.text
    assert second["step"] > first["step"] and second["step"] == planned_steps(caplog.text)[-1]
    with pytest.raises(TrainerError, match="has spent .* of its --time-budget 5s"):
        train.run(replace(config, continue_train=True, time_budget="5s"), images=blob_images)


def test_a_budget_shorter_than_start_up_is_one_line_and_writes_nothing(
    tmp_path, blob_images, monkeypatch
):
    monkeypatch.setattr(budget, "process_age", lambda clock=None: 7.5)
    with pytest.raises(TrainerError, match=r"--time-budget 5s is shorter than this run's start"):
        budgeted_run(tmp_path, blob_images, "5s")
    assert not (tmp_path / "ckpt").exists()


def test_a_checkpoint_without_the_time_spent_still_resumes(tmp_path, blob_images):
    from helpers import tiny_config

    config = tiny_config(tmp_path)
    state = train_state.build_state(config)
    old = state.checkpoint(elapsed=False)
    old.save(str(tmp_path / "old" / "ckpt"))
    fresh = train_state.build_state(config)
    train_state.restore(fresh, str(tmp_path / "old"))
    assert float(fresh.elapsed.numpy()) == 0.0
    np.testing.assert_array_equal(
        fresh.generator.get_weights()[0], state.generator.get_weights()[0]
    )


def test_the_command_line_trains_to_a_budget(tmp_path, monkeypatch, no_start_up, caplog):
    monkeypatch.setattr(
        "trainer.data.load_training",
        lambda config: (np.zeros((64, 28, 28), np.uint8), None, config.image),
    )
    argv = ["--checkpoint-dir", str(tmp_path / "ckpt"), "--log-dir", str(tmp_path / "logs")]
    with caplog.at_level(logging.INFO):
        assert task.main([*argv, *TINY_FLAGS, "--time-budget", "6s"]) == 0
    assert planned_steps(caplog.text)
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith(
        f"ckpt-{planned_steps(caplog.text)[-1]}"
    )


RECIPES = {"mnist": ((300, {"batch_size": 32, "ema_decay": 0.99}), (1200, {"batch_size": 48}))}


@pytest.mark.parametrize(
    "given, batch, ema", [("90s", 32, 0.99), ("5m", 32, 0.99), ("6m", 48, 0.999), ("2h", 48, 0.999)]
)
def test_a_budget_takes_the_first_recipe_as_long_as_itself_or_the_last(
    monkeypatch, given, batch, ema
):
    monkeypatch.setattr(train_config, "BUDGET_RECIPES", RECIPES)
    config = resolved("--time-budget", given)
    assert (config.batch_size, config.ema_decay) == (batch, ema)


def test_a_flag_given_wins_over_the_recipe_and_the_log_says_so(monkeypatch):
    monkeypatch.setattr(train_config, "BUDGET_RECIPES", RECIPES)
    config = resolved("--time-budget", "4m", "--batch-size", "64")
    assert (config.batch_size, config.ema_decay) == (64, 0.99)
    line = train._recipe_line(config)
    assert "the 5m00s recipe for mnist" in line
    assert "ema_decay 0.99" in line and "your flags instead: batch_size 64" in line


def test_no_recipe_without_a_budget_for_a_conditional_run_or_another_data_set(monkeypatch):
    monkeypatch.setattr(train_config, "BUDGET_RECIPES", RECIPES)
    assert resolved().batch_size == 64
    conditional = resolved("--time-budget", "4m", "--conditional")
    assert conditional.batch_size == 64
    assert "no --time-budget recipe is measured for conditional runs" in train._recipe_line(
        conditional
    )
    fashion = resolved("--time-budget", "4m", "--dataset", "fashion-mnist")
    assert fashion.batch_size == 64
    assert "for --dataset fashion-mnist" in train._recipe_line(fashion)


def test_a_folder_takes_the_recipe_of_its_image_size_and_the_log_names_it(monkeypatch):
    folder_recipes = {"folder-64": ((600, {"batch_size": 32}),)}
    monkeypatch.setattr(train_config, "BUDGET_RECIPES", folder_recipes)
    at_64 = resolved("--time-budget", "10m", "--dataset", "folder")
    assert at_64.batch_size == 32
    assert "the 10m00s recipe for folder-64" in train._recipe_line(at_64)
    at_32 = resolved("--time-budget", "10m", "--dataset", "folder", "--image-size", "32")
    assert at_32.batch_size == 64
    assert "no --time-budget recipe is measured for --dataset folder at --image-size 32" in (
        train._recipe_line(at_32)
    )
    assert resolved("--time-budget", "10m").batch_size == 64  # MNIST has none here


@pytest.mark.parametrize("key", sorted(train_config.BUDGET_RECIPES))
def test_every_shipped_recipe_builds_a_valid_config_that_changes_the_defaults(key):
    recipes = train_config.BUDGET_RECIPES[key]
    dataset, _, size = key.partition("-")
    dataset, size = (dataset, int(size)) if dataset == "folder" else (key, None)
    assert train_config.recipe_key(dataset, size) == key
    assert [r[0] for r in recipes] == sorted({r[0] for r in recipes})  # shortest first
    for seconds, fields in recipes:
        config = train_config.defaults(dataset=dataset, image_size=size, time_budget=f"{seconds}s")
        assert {k: getattr(config, k) for k in fields} == fields
        plain = train_config.defaults(dataset=dataset, image_size=size)
        assert any(getattr(plain, k) != v for k, v in fields.items())
