"""Placement groups on one node: reservation, validation, the group a task
runs in, and its child tasks. (Across nodes: tests/test_multinode.py.)"""

import pytest

import oxray
from conftest import wait_for
from oxray.util.scheduling_strategies import PlacementGroupSchedulingStrategy


@oxray.remote(num_cpus=0.5)
def current_group():
    pg = oxray.util.get_current_placement_group()
    return pg.id.hex() if pg else None


@oxray.remote(num_cpus=0.5)
def parent():
    return current_group.remote()


def cpus_free():
    return oxray.available_resources().get("CPU", 0)


def test_bad_bundles_and_strategies_are_refused(cluster_4cpu):
    with pytest.raises(ValueError, match="non-empty"):
        oxray.util.placement_group([])
    with pytest.raises(ValueError, match="only 0 values"):
        oxray.util.placement_group([{"CPU": 0}])
    with pytest.raises(ValueError, match="Invalid placement group strategy"):
        oxray.util.placement_group([{"CPU": 1}], strategy="TIGHT")
    with pytest.raises(ValueError, match="lifetime"):
        oxray.util.placement_group([{"CPU": 1}], lifetime="forever")


def test_reserve_run_inside_and_remove(cluster_4cpu):
    assert wait_for(lambda: cpus_free() == 4)
    pg = oxray.util.placement_group([{"CPU": 1}, {"CPU": 1}], strategy="PACK", name="pair")
    assert oxray.get(pg.ready(), timeout=30) == pg
    assert wait_for(lambda: cpus_free() == 2), oxray.available_resources()
    assert oxray.util.get_placement_group("pair") == pg
    table = oxray.util.placement_group_table(pg)
    assert table["state"] == "CREATED" and table["strategy"] == "PACK" and len(table["bundles"]) == 2
    for index in (0, 1, -1):
        strategy = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=index)
        assert oxray.get(current_group.options(scheduling_strategy=strategy).remote(), timeout=30) == pg.id.hex()
    # Outside any group, a task sees none.
    assert oxray.get(current_group.remote(), timeout=30) is None
    assert oxray.util.get_current_placement_group() is None
    with pytest.raises(ValueError, match="out of range"):
        current_group.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 5)).remote()
    oxray.util.remove_placement_group(pg)
    assert wait_for(lambda: cpus_free() == 4), oxray.available_resources()
    assert oxray.util.placement_group_table(pg)["state"] == "REMOVED"
    with pytest.raises(ValueError, match="pair"):
        oxray.util.get_placement_group("pair")


def test_child_tasks_follow_the_group_only_when_captured(cluster_4cpu):
    pg = oxray.util.placement_group([{"CPU": 2}])
    oxray.get(pg.ready(), timeout=30)
    try:
        captured = PlacementGroupSchedulingStrategy(pg, placement_group_capture_child_tasks=True)
        assert oxray.get(oxray.get(parent.options(scheduling_strategy=captured).remote(), timeout=30)) == pg.id.hex()
        plain = PlacementGroupSchedulingStrategy(pg)
        assert oxray.get(oxray.get(parent.options(scheduling_strategy=plain).remote(), timeout=30)) is None
    finally:
        oxray.util.remove_placement_group(pg)


def test_a_group_that_cannot_fit_waits_and_ready_fails_when_removed(cluster_4cpu):
    pg = oxray.util.placement_group([{"CPU": 8}])
    assert not pg.wait(timeout_seconds=0.5)
    ready = pg.ready()
    oxray.util.remove_placement_group(pg)
    with pytest.raises(oxray.exceptions.RayError, match="removed"):
        oxray.get(ready, timeout=30)
    assert wait_for(lambda: cpus_free() == 4)


def test_actor_in_a_group(cluster_4cpu):
    @oxray.remote(num_cpus=1)
    class Member:
        def group(self):
            pg = oxray.util.get_current_placement_group()
            return pg.id.hex() if pg else None

    pg = oxray.util.placement_group([{"CPU": 1}])
    oxray.get(pg.ready(), timeout=30)
    a = Member.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote()
    assert oxray.get(a.group.remote(), timeout=30) == pg.id.hex()
    oxray.kill(a)
    oxray.util.remove_placement_group(pg)
    assert wait_for(lambda: cpus_free() == 4)


def test_removing_a_group_ends_its_actors(cluster_4cpu):
    @oxray.remote(num_cpus=1, max_restarts=3)
    class Member:
        def ping(self):
            return "pong"

    pg = oxray.util.placement_group([{"CPU": 1}])
    oxray.get(pg.ready(), timeout=30)
    a = Member.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote()
    assert oxray.get(a.ping.remote(), timeout=30) == "pong"
    oxray.util.remove_placement_group(pg)
    with pytest.raises(oxray.exceptions.RayActorError, match="placement group was removed"):
        oxray.get(a.ping.remote(), timeout=30)
    assert wait_for(lambda: cpus_free() == 4)
