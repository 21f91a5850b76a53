"""Which tables are due for ANALYZE / VACUUM: autovacuum's default thresholds (pure)."""
import pytest

from shared.table_maintenance import MaintenanceStep, TableActivity, due


@pytest.mark.parametrize("rows, changed, dead, expected", [
    (-1, 0, 0, None),           # never analyzed, untouched
    (-1, 50, 0, None),          # 50 + 10 % of nothing: at the threshold, not over it
    (-1, 51, 0, "analyze"),     # a fresh table that got its first rows
    (1000, 150, 0, None),       # 50 + 100
    (1000, 151, 0, "analyze"),
    (1000, 0, 250, None),       # 50 + 200 dead rows: not yet
    (1000, 0, 251, "vacuum"),
    (1000, 500, 251, "vacuum"),  # VACUUM (ANALYZE) covers the analysis too
    (100000, 9000, 0, None),
    (100000, 10051, 0, "analyze"),
])
def test_a_table_is_due_by_autovacuums_default_thresholds(rows, changed, dead, expected) -> None:
    steps = due([TableActivity("t", rows, changed, dead)])
    if expected is None:
        assert steps == []
    else:
        assert steps == [MaintenanceStep("t", vacuum=expected == "vacuum")]


def test_only_the_tables_due_are_named_and_quoted() -> None:
    steps = due([TableActivity("outbox", 10, 0, 500), TableActivity("quiet", 10, 1, 0),
                 TableActivity('odd"name', -1, 60, 0)])
    assert [s.sql() for s in steps] == ['VACUUM (ANALYZE) "outbox"', 'ANALYZE "odd""name"']
