import io

from trainer.progress import EpochProgress


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_bar_shows_position_losses_and_throughput_on_a_terminal():
    stream = FakeTerminal()
    progress = EpochProgress(epoch=2, num_epochs=5, total=10, done=0, batch_size=32, stream=stream)
    progress.update(5, {"d_loss": 1.25, "g_loss": 0.5}, force=True)
    progress.close({"d_loss": 1.0, "g_loss": 0.75})
    first, last = stream.getvalue().split("\r")[1:]
    assert first.startswith("epoch 3/5 [" + "=" * 15 + ">") and " 5/10 " in first
    assert "d_loss 1.25  g_loss 0.5  img/s " in first
    assert " 5/10 " in last  # close redraws the last position
    assert "d_loss 1  g_loss 0.75" in last and last.endswith("\n")


def test_nothing_is_drawn_off_a_terminal():
    stream = io.StringIO()
    progress = EpochProgress(0, 1, 10, stream=stream)
    progress.update(3, {"d_loss": 1.0}, force=True)
    progress.close({"d_loss": 1.0})
    assert stream.getvalue() == ""


def test_a_run_that_has_not_planned_its_epochs_shows_the_epoch_alone():
    stream = FakeTerminal()
    progress = EpochProgress(epoch=0, num_epochs=None, total=10, stream=stream)
    progress.update(1, {}, force=True)
    assert stream.getvalue().startswith("\repoch 1 [")
