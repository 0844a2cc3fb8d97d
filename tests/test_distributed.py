import operator

from numl_core.distributed import map_members


def test_in_process_keeps_order():
    assert map_members(operator.mul, [(2, 3), (4, 5), (6, 7)]) == [6, 20, 42]


def test_local_cluster_matches_in_process():
    members = [(i, i + 1) for i in range(6)]
    assert map_members(operator.mul, members, scheduler="local", n_workers=2) == [a * b for a, b in members]
