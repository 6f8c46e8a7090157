"""Faults: a process killed (SIGKILL) while checkpointing, exact mid-epoch resume with a resumable dataloader,
and format="pt" checkpoints with non-tensor hyperparameters resuming without weights_only."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from callbridge.adapters import to_lightning
from callbridge.callbacks import Callback, CallbackContext, CheckpointCallback
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from toy import ToyRegression, make_trainer

HERE = Path(__file__).parent

# A model whose val_loss is scripted by epoch (so a resumed run sees the same values as an uninterrupted one).
BY_EPOCH = """
import torch
from toy import ToyRegression

class ByEpoch(ToyRegression):
    LOSSES = [1.0, 0.5, 0.7, 0.4, 0.8, 0.9]

    def on_validation_epoch_end(self):
        if not self.trainer.sanity_checking:
            self.log("val_loss", self.LOSSES[min(self.current_epoch, len(self.LOSSES) - 1)])
"""
namespace: dict[str, Any] = {}
exec(BY_EPOCH, namespace)
ByEpoch = namespace["ByEpoch"]


def _run(script: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(HERE), KERAS_BACKEND="torch", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=300)


class FolderProbe(Callback):
    """Lists the checkpoint folder when training begins, after CheckpointCallback reconciled it."""

    priority = 300

    def __init__(self, folder: Path) -> None:
        self.folder, self.listing = folder, None

    def on_train_begin(self, ctx: CallbackContext) -> None:
        self.listing = sorted(p.name for p in self.folder.iterdir())


# Where the killed process dies while saving epoch 2 (top-2 by val_loss, so epoch 0's file is evicted there):
KILL_POINTS = {
    # after last.pt and the ranked copy are written, before the evicted epoch-0 file is deleted: K+1 ranked files
    "before-eviction": (
        "import pathlib\nreal = pathlib.Path.unlink\n"
        "def dying(self, *a, **k):\n"
        "    if self.name.startswith('epoch='): os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real(self, *a, **k)\n"
        "pathlib.Path.unlink = dying\n",
        ["epoch=0-step=4.pt", "epoch=1-step=8.pt", "epoch=2-step=12.pt"],
    ),
    # after last.pt is written, while copying it to epoch 2's ranked file: a .tmp file, no epoch-2 file
    "mid-ranked-copy": (
        "import shutil\nreal = shutil.copyfile\n"
        "def dying(src, dst, *a, **k):\n"
        "    if os.path.basename(dst).startswith('.epoch=2'): os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real(src, dst, *a, **k)\n"
        "shutil.copyfile = dying\n",
        ["epoch=0-step=4.pt", "epoch=1-step=8.pt"],
    ),
}


@pytest.mark.parametrize("kill_point", sorted(KILL_POINTS))
def test_kills_mid_checkpointing_leave_nothing_after_the_resumed_run(tmp_path: Path, kill_point: str) -> None:
    folder = tmp_path / "ckpt"
    patch, left = KILL_POINTS[kill_point]
    # Kill 1: a real SIGKILL inside CheckpointCallback's save of epoch 2.
    killed_while_saving = (
        BY_EPOCH
        + "import os, signal\n"
        + patch
        + textwrap.dedent(
            f"""
            from callbridge.adapters import to_lightning
            from callbridge.callbacks import CheckpointCallback
            from toy import make_trainer
            ckpt = CheckpointCallback({str(folder)!r}, save_total_limit=2, monitor="val_loss")
            trainer = make_trainer(to_lightning([ckpt]), max_epochs=6, limit_val_batches=1)
            trainer.fit(ByEpoch())
            """
        )
    )
    proc = _run(killed_while_saving)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-3000:]
    assert sorted(p.name for p in folder.glob("epoch=*")) == left
    # Kill 2: a real SIGKILL while torch.save streams the next last.pt into its temporary file.
    killed_mid_write = textwrap.dedent(
        f"""
        import os, signal, torch
        from callbridge.callbacks.serialization import save_checkpoint_file
        def dying_save(obj, f, *a, **k):
            with open(f, "wb") as handle:
                handle.write(b"PK\\x03\\x04 partial")
                handle.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        torch.save = dying_save
        save_checkpoint_file({{"epoch": 9}}, {str(folder / "last.pt")!r})
        """
    )
    proc = _run(killed_mid_write)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-3000:]
    temporary = sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))
    assert [name.split(".pt.")[0] for name in temporary] == [".epoch=2-step=12", ".last"][2 - len(temporary) :]
    assert temporary[-1].startswith(".last.pt.")

    # Resume from last.pt (epoch 2's state): before the first batch the leftovers are gone (and a ranked copy the
    # killed run had not finished is made), and the run ends with exactly the K best ranked files plus last.
    probe = FolderProbe(folder)
    ckpt = CheckpointCallback(folder, save_total_limit=2, monitor="val_loss")
    trainer = make_trainer(to_lightning([probe, ckpt]), max_epochs=4, limit_val_batches=1)
    trainer.fit(ByEpoch(), ckpt_path=folder / "last.pt")
    assert probe.listing == ["epoch=1-step=8.pt", "epoch=2-step=12.pt", "last.pt"]
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=1-step=8.pt", "epoch=3-step=16.pt", "last.pt"]
    assert [Path(p).name for p in ckpt.kept_paths] == ["epoch=3-step=16.pt", "epoch=1-step=8.pt"]


def test_a_fresh_run_removes_temporary_files_but_keeps_an_earlier_runs_checkpoints(tmp_path: Path) -> None:
    (tmp_path / "epoch=7-step=99.pt").write_bytes(b"an earlier run's file")
    (tmp_path / ".epoch=1-step=4.pt.abc123.tmp").write_bytes(b"partial")
    (tmp_path / ".notes.txt.tmp").write_bytes(b"not callbridge's: kept")
    ckpt = CheckpointCallback(tmp_path, save_total_limit=1)
    trainer = make_trainer(to_lightning([ckpt]), max_epochs=1, limit_val_batches=1)
    trainer.fit(ToyRegression())
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".notes.txt.tmp",
        "epoch=0-step=4.pt",
        "epoch=7-step=99.pt",
        "last.pt",
    ]


# -- mid-epoch resume -------------------------------------------------------------------------------------
class ResumableLoader:
    """Shuffled batches whose position Lightning saves in the checkpoint: ``state_dict``/``load_state_dict``
    make it one of Lightning's stateful dataloaders (the pattern of torchdata's ``StatefulDataLoader``)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int = 0) -> None:
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.epoch = self.next_epoch = self.yielded = self._skip = 0

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __iter__(self):
        # Each pass is the next epoch: Lightning stops after len() batches without exhausting the iterator, so
        # the epoch is counted when a pass starts, never when one ends.
        self.epoch, self.next_epoch = self.next_epoch, self.next_epoch + 1
        start, self._skip = self._skip, 0
        order = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(self.seed + self.epoch))
        self.yielded = start
        for number in range(start, len(self)):
            self.yielded = number + 1
            index = order[number * self.batch_size : (number + 1) * self.batch_size]
            yield self.x[index], self.y[index]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "yielded": self.yielded}

    def load_state_dict(self, state: dict[str, int]) -> None:
        done = state["yielded"] >= len(self)  # saved after an epoch's last batch: the next pass is a new epoch
        self.next_epoch, self._skip = state["epoch"] + done, 0 if done else state["yielded"]


class Shuffled(ToyRegression):
    def __init__(self, resumable: bool, fail_at_step: int | None = None) -> None:
        super().__init__(fail_at_step=fail_at_step)
        self.resumable = resumable

    def train_dataloader(self) -> Any:
        if self.resumable:
            return ResumableLoader(self.x, self.y, batch_size=16)
        generator = torch.Generator().manual_seed(0)
        return torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(self.x, self.y), batch_size=16, shuffle=True, generator=generator
        )


def _mid_epoch_run(folder: Path, resumable: bool, fail_at_step: int | None = None, ckpt_path: Any = None) -> Any:
    torch.manual_seed(0)
    model = Shuffled(resumable, fail_at_step)
    ckpt = CheckpointCallback(folder, strategy="step", save_steps=2)
    trainer = make_trainer(to_lightning([ckpt]), max_epochs=3, limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(model, ckpt_path=ckpt_path)
    assert trainer.global_step == 12
    return model.layer.weight.detach().clone()


def test_mid_epoch_resume_is_exact_with_a_resumable_dataloader(tmp_path: Path) -> None:
    # 4 shuffled batches per epoch, a checkpoint every 2 steps: step 6 is mid-epoch (epoch 1 after its 2nd batch),
    # step 8 is saved after epoch 1's last batch.
    full = _mid_epoch_run(tmp_path / "full", resumable=True)
    for fail_at_step in (7, 9):
        cut = tmp_path / f"cut-{fail_at_step}"
        with pytest.raises(RuntimeError, match=f"training failed at step {fail_at_step}"):
            _mid_epoch_run(cut, resumable=True, fail_at_step=fail_at_step)
        resumed = _mid_epoch_run(cut, resumable=True, ckpt_path=cut / "last.pt")
        assert torch.equal(resumed, full), f"resumed from step {fail_at_step - 1}"  # bit for bit
    # documented: a plain DataLoader restarts the epoch from its first batch, and Lightning warns
    plain_full = _mid_epoch_run(tmp_path / "plain-full", resumable=False)
    with pytest.raises(RuntimeError, match="training failed at step 7"):
        _mid_epoch_run(tmp_path / "plain-cut", resumable=False, fail_at_step=7)
    with pytest.warns(PossibleUserWarning, match="dataloader is not resumable"):
        resumed = _mid_epoch_run(tmp_path / "plain-cut", resumable=False, ckpt_path=tmp_path / "plain-cut" / "last.pt")
    assert not torch.equal(resumed, plain_full)


# -- format="pt" with non-tensor hyperparameters ------------------------------------------------------------
class WithNamespace(ToyRegression):
    def __init__(self, options: argparse.Namespace | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)


def test_pt_checkpoints_with_non_tensor_hparams_resume_without_weights_only(tmp_path: Path) -> None:
    ckpt = CheckpointCallback(tmp_path, format="pt")
    trainer = make_trainer(to_lightning([ckpt]), max_epochs=1, limit_val_batches=1)
    trainer.fit(WithNamespace(argparse.Namespace(depth=3)))
    with pytest.raises(Exception, match="Weights only load failed"):  # what torch's default would do
        torch.load(ckpt.last_path)
    resumed = make_trainer(to_lightning([CheckpointCallback(tmp_path, format="pt")]), max_epochs=2)
    model = WithNamespace(argparse.Namespace(depth=3))
    resumed.fit(model, ckpt_path=ckpt.last_path)  # no weights_only argument
    assert resumed.global_step == 8 and model.hparams.options.depth == 3
