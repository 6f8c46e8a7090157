"""The bridge under DDP (2 CPU processes, gloo); the scenarios are in tests/ddp_scenarios/bridge.py."""

import pytest

pytestmark = pytest.mark.ddp


def test_stop_requested_on_rank_one_stops_both_ranks_at_the_same_step(ddp_results) -> None:
    rank0, rank1 = ddp_results("bridge_stop_on_rank_one")
    assert rank0["global_step"] == rank1["global_step"] == 3
    assert rank0["steps_seen"] == rank1["steps_seen"] == 3


def test_rank_zero_only_writes_reach_every_rank(ddp_results) -> None:
    rank0, rank1 = ddp_results("bridge_rank_zero_writes_broadcast")
    assert rank0["lr"] == rank1["lr"] == 0.123
    assert rank0["weights"] == rank1["weights"]
    # rank 0 alone set every weight to 0.5 at the end of the last epoch; rank 1 got them by broadcast
    assert all(value == 0.5 for row in rank1["weights"] for value in row)


def test_rank_zero_only_step_listener_does_not_hang_and_stops_both_ranks(ddp_results) -> None:
    rank0, rank1 = ddp_results("bridge_rank_zero_only_step_stop")
    assert rank0["global_step"] == rank1["global_step"] == 2
