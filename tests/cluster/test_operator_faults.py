"""The operator through the faults a cluster brings (`make chaos`'s `operator` scenario, one round of each):
its link to the API server down while the watchlist is edited, the API server restarted, a hand write to
its ConfigMap, a burst of edits. After each, the ConfigMap settles on the watchlist's last state."""

from __future__ import annotations

import random
from pathlib import Path

from stockpipe_dev.bench.chaos_operator import FAULTS, operator_faults
from stockpipe_dev.localservices.kube.controlplane import ControlPlane


def test_the_watchlists_last_state_wins_through_every_fault(control_plane: ControlPlane, tmp_path: Path) -> None:
    scenario = operator_faults(control_plane, tmp_path, rounds=1, rng=random.Random(19))
    # The first edit, then: one in the link's outage, two around the restart, one after the hand write, ten.
    assert scenario.produced == 1 + 1 + 2 + 1 + 10
    assert scenario.lost == 0, scenario.detail
    assert all(fault in scenario.detail for fault in FAULTS)
    # The API server answers again for whoever comes next.
    info = control_plane.info()
    assert info is not None
    assert info.get("/readyz") == b"ok"
