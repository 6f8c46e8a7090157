"""HF callbacks under DDP (2 CPU processes, gloo); the scenario is in tests/ddp_scenarios/hf.py."""

import pytest

pytest.importorskip("transformers")
pytestmark = pytest.mark.ddp


def test_hf_callbacks_run_on_every_rank_and_the_ranks_agree(ddp_results) -> None:
    rank0, rank1 = ddp_results("hf_every_rank_stop_and_save_agree")
    assert rank0["zero"] == [True] and rank1["zero"] == [False]  # state.is_world_process_zero as HF sets it
    assert rank0["global_step"] == rank1["global_step"] == 3  # rank 1's stop stops both
    assert rank0["steps_seen"] == rank1["steps_seen"] == 3
    assert rank0["saved"] == rank1["saved"] == ["checkpoint-2"]  # rank 0's save, written once, no hang
    assert rank0["saved_files"] == ["model.ckpt", "trainer_state.json"]
    assert rank0["logged_steps"] == [1, 2, 3, 3]  # one line per log (3 windows, the summary), rank 0 only
