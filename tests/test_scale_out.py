"""Scale-out on existing engines: Ray Train with fault-tolerant resume, two torchrun nodes on loopback, sharded
weights, and checkpoints that hold the callbacks' state whichever hook saves them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.ddp
def test_two_nodes_on_loopback_agree_on_stop_and_learning_rate(tmp_path: Path) -> None:
    """Two torchrun launchers (one per "node", one process each) rendezvous on 127.0.0.1; every rank stops at
    the step the last rank asked for and trains with rank zero's learning rate; both launchers exit 0."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(TESTS), OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
    launchers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes=2",
                "--nproc_per_node=1",
                f"--node_rank={node}",
                "--master_addr=127.0.0.1",
                f"--master_port={port}",
                str(TESTS / "ddp_runner.py"),
                str(tmp_path / f"node{node}"),
                "nodes_agree_on_stop_and_lr",
            ],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for node in (0, 1)
    ]
    logs, codes = [], []
    try:
        for launcher in launchers:
            out, _ = launcher.communicate(timeout=TIMEOUT_S)
            logs.append(out)
            codes.append(launcher.returncode)
    finally:
        for launcher in launchers:
            if launcher.poll() is None:
                launcher.kill()
    assert codes == [0, 0], "\n----\n".join(log[-3000:] for log in logs)
    results = []
    for node in (0, 1):
        data = json.loads((tmp_path / f"node{node}" / "nodes_agree_on_stop_and_lr" / f"rank{node}.json").read_text())
        assert data["ok"], data.get("error")
        results.append(data["result"])
    assert [r["node_rank"] for r in results] == [0, 1]
    assert [r["num_nodes"] for r in results] == [2, 2]
    assert [r["global_step"] for r in results] == [3, 3]
    assert [r["lr"] for r in results] == [0.0321, 0.0321]


@pytest.mark.ddp
def test_fsdp2_sharded_weights_snapshot_and_restore_on_every_rank(ddp_results) -> None:
    """EarlyStoppingCallback(restore_best=True) over FSDP2-sharded weights: each rank keeps its own shard (on
    the host with offload_snapshot), and at train end the whole model is the best epoch's again."""
    for rank in ddp_results("fsdp2_restore_best_weights"):
        assert rank["stopped_epoch"] == 3
        assert rank["snapshot_is_sharded"] and rank["snapshot_on_cpu"]
        assert rank["snapshot_in_checkpoint"] is False
    rank0, _ = ddp_results("fsdp2_restore_best_weights")  # the full state is gathered on rank 0 only
    assert rank0["changed_since_best"]
    assert rank0["restored_equals_best"]


def _rows_without_times(text: str) -> list[dict[str, str]]:
    import csv
    import io

    return [{k: v for k, v in row.items() if "time" not in k} for row in csv.DictReader(io.StringIO(text))]


def test_ray_train_resume_after_a_worker_failure_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """examples/ray_train.py on 2 Ray Train CPU workers, uninterrupted and with rank 0 crashing at the start of
    epoch 3 (Ray restarts the workers, fit resumes from the checkpoint RayTrainReportCallback reported at epoch 2's
    end, which is saved before callbridge's relayed epoch end): same stop epoch, same kept checkpoint files, same
    CSV rows."""
    ray = pytest.importorskip("ray")
    sys.path.insert(0, str(TESTS.parent / "examples"))
    try:
        import ray_train
    finally:
        sys.path.pop(0)
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(ray_train)  # the workers cannot import examples/: ship it by value
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        whole = ray_train.run(tmp_path / "whole")
        resumed = ray_train.run(tmp_path / "resumed", fail_at_epoch=3)
    finally:
        ray.shutdown()
    assert (tmp_path / "resumed" / "failed.marker").exists()  # the failure really happened
    assert whole["summary"] == resumed["summary"]
    assert whole["checkpoints"] == resumed["checkpoints"] == ["epoch=2-step=6.pt", "epoch=3-step=8.pt"]
    assert whole["csv"].keys() == resumed["csv"].keys() and whole["csv"]
    for name, text in whole["csv"].items():
        assert _rows_without_times(resumed["csv"][name]) == _rows_without_times(text), name
    assert resumed["ray_checkpoint"]


def test_a_checkpoint_saved_before_the_relay_holds_this_epochs_callback_state(tmp_path: Path) -> None:
    import lightning as L
    import torch
    from callbridge.adapters import to_lightning
    from callbridge.callbacks import Callback
    from toy import ToyRegression, make_trainer

    class EpochsSeen(Callback):
        def __init__(self) -> None:
            self.seen: list[int] = []

        def on_epoch_end(self, ctx) -> None:
            self.seen.append(ctx.epoch)

        def state_dict(self) -> dict:
            return {"seen": list(self.seen)}

        def load_state_dict(self, state: dict) -> None:
            self.seen = list(state["seen"])

    class SaveAtEpochEnd(L.Callback):
        """Saves in the first pass of on_train_epoch_end, after the bridge and before callbridge's relayed epoch
        end (as Ray Train's report callback does)."""

        def on_train_epoch_end(self, trainer, pl_module):
            trainer.save_checkpoint(tmp_path / f"epoch{trainer.current_epoch}.ckpt")

    seen = EpochsSeen()
    trainer = make_trainer([*to_lightning([seen]), SaveAtEpochEnd()], max_epochs=3)
    trainer.fit(ToyRegression())
    assert seen.seen == [0, 1, 2]  # each epoch end ran once
    for epoch in range(3):
        saved = torch.load(tmp_path / f"epoch{epoch}.ckpt", weights_only=False)
        (state,) = [v for k, v in saved["callbacks"].items() if k.startswith("callbridge[")]
        assert list(state.values()) == [{"seen": list(range(epoch + 1))}]


@pytest.mark.ddp
def test_lightning_model_parallel_fsdp2_restores_the_best_sharded_weights(ddp_results) -> None:
    """Lightning's own sharded strategy on 2 CPU processes: the context knows the weights are sharded, and
    EarlyStoppingCallback's restore brings back the best epoch's whole model."""
    rank0, rank1 = ddp_results("model_parallel_restore_best_weights")
    for rank in (rank0, rank1):
        assert rank["strategy"] == "ModelParallelStrategy" and rank["weights_sharded"]
        assert (rank["stopped_epoch"], rank["best_epoch"]) == (3, 1)
        assert rank["snapshot_on_cpu"]
    assert rank0["restored_equals_best"] and rank0["differs_from_last"]


@pytest.mark.ddp
def test_a_rank_zero_weight_writer_is_refused_before_training_under_a_sharding_strategy(ddp_results) -> None:
    for rank in ddp_results("model_parallel_refuses_rank_zero_weight_writer"):
        assert rank["steps"] == 0
        assert "ModelParallelStrategy" in rank["error"] and "RankZeroRestore" in rank["error"]
