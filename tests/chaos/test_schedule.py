from tests.chaos.faults import KINDS, schedule


def test_same_seed_same_schedule_and_every_kind_appears():
    a, b = schedule(7, 200), schedule(7, 200)
    assert a == b
    assert schedule(8, 200) != a
    assert {f.kind for f in a} == set(KINDS)
