"""ProgressCallback under a real Lightning Trainer (one bar, never two) and in a plain loop."""

from __future__ import annotations

import io

import pytest
import torch
from callbridge.adapters import to_lightning
from callbridge.callbacks import CallbackContext, CallbackList, ProgressCallback
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress import ProgressBar
from toy import ToyRegression, make_trainer


def fit_with_bar(capfd, *extra, **overrides):
    callback = ProgressCallback(monitor=overrides.pop("monitor", None))
    trainer = make_trainer(to_lightning([callback, *extra]), max_epochs=2, limit_val_batches=2, **overrides)
    trainer.fit(ToyRegression(n=64, batch_size=16))
    captured = capfd.readouterr()
    # ours draws on stderr (tqdm's default); Lightning's TQDMProgressBar draws on stdout
    return callback, trainer, captured.err, captured.out


@pytest.mark.parametrize("enable_progress_bar", [True, False])
def test_one_bar_replaces_lightnings(capfd, enable_progress_bar):
    callback, trainer, err, out = fit_with_bar(capfd, enable_progress_bar=enable_progress_bar)
    assert not any(isinstance(cb, ProgressBar) for cb in trainer.callbacks)
    assert callback.bars_drawn == 2
    # our bars, numbered as Lightning numbers epochs ("Epoch 0/1", "Epoch 1/1"), each reaching 4/4 with the loss
    # and the learning rate
    assert "Epoch 0/1" in err and "Epoch 1/1" in err
    assert "4/4" in err and "loss=" in err and "lr=0.05" in err
    assert "val_loss=" in err  # the first val metric, as no monitor was given
    # nothing from Lightning's bar (its "Epoch 0:" bar, sanity-check and validation bars) on either stream
    for text in (err, out):
        assert "Sanity Checking" not in text and "Validation" not in text and "Epoch 0:" not in text
    assert "it/s" not in out


def test_a_user_given_lightning_bar_is_dropped_too(capfd):
    _, trainer, err, out = fit_with_bar(capfd, TQDMProgressBar(), enable_progress_bar=True, monitor="train_loss")
    assert not any(isinstance(cb, ProgressBar) for cb in trainer.callbacks)
    assert "Epoch 0:" not in out + err and "Epoch 1/1" in err
    assert "train_loss=" in err and "val_loss=" not in err


def test_plain_loop_and_silent_on_other_ranks():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for is_global_zero in (True, False):
        out = io.StringIO()
        callback = ProgressCallback(refresh_rate=2, file=out)
        callbacks = CallbackList([callback], is_global_zero=is_global_zero)
        ctx = CallbackContext(model=model, optimizer=optimizer, is_global_zero=is_global_zero)
        callbacks.on_train_begin(ctx)
        for epoch in range(2):
            ctx.epoch = epoch
            callbacks.on_epoch_begin(ctx)
            for _ in range(5):
                ctx.step += 1
                ctx.loss = torch.tensor(0.25)
                callbacks.on_step_end(ctx)
            ctx.metrics = {"val_acc": 0.75}
            callbacks.on_epoch_end(ctx)
        callbacks.on_train_end(ctx)
        text = out.getvalue()
        if is_global_zero:
            assert callback.bars_drawn == 2
            assert "Epoch 0:" in text and "Epoch 1:" in text and "5it" in text  # no max_epochs: no total
            assert "loss=0.25" in text and "lr=0.01" in text and "val_acc=0.75" in text
        else:
            assert callback.bars_drawn == 0 and text == ""


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="ProgressCallback: refresh_rate must be an int >= 0"):
        ProgressCallback(refresh_rate=-1)
    with pytest.raises(TypeError, match="ProgressCallback: monitor must be a metric name"):
        ProgressCallback(monitor=3)


def test_refresh_rate_zero_hides_the_bar(capfd):
    callback = ProgressCallback(refresh_rate=0)
    trainer = make_trainer(to_lightning([callback]), max_epochs=1, limit_val_batches=1, enable_progress_bar=True)
    trainer.fit(ToyRegression(n=32, batch_size=16))
    captured = capfd.readouterr()
    assert callback.bars_drawn == 0 and "Epoch" not in captured.out + captured.err
