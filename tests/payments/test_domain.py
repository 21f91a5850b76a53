"""Pure rules: who signs (P1, P2, L4), benefit months (P5, D5), the P3 clock on the official calendar."""
from __future__ import annotations

import itertools
from datetime import date, datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.payments.domain import deadlines as dd
from services.payments.domain import payments as ps
from services.payments.domain import periods as pr
from services.payments.domain import signoffs as so
from shared.calendar import WorkingCalendar


@pytest.mark.parametrize("order", list(itertools.permutations(so.TOWNSHIP_PAYOUT_ROLES)))
def test_p2_three_roles_in_any_order_complete_the_signoffs(order) -> None:
    given_: list[so.Signoff] = []
    for i, role in enumerate(order):
        assert not so.is_complete(so.TOWNSHIP_PAYOUT_ROLES, given_)
        so.check(so.TOWNSHIP_PAYOUT_ROLES, given_, role=role, signer_sub=f"p{i}")
        given_.append(so.Signoff(role, f"p{i}"))
    assert so.is_complete(so.TOWNSHIP_PAYOUT_ROLES, given_)
    with pytest.raises(so.SignoffRefused) as done:
        so.check(so.TOWNSHIP_PAYOUT_ROLES, given_, role=order[0], signer_sub="p9")
    assert done.value.status == 409


@given(st.lists(st.tuples(st.sampled_from(so.TOWNSHIP_PAYOUT_ROLES + ("township_clerk", "county_finance")),
                          st.sampled_from(["a", "b", "c", "d"])), max_size=8))
def test_p2_accepted_signoffs_are_always_distinct_people_in_distinct_roles(attempts) -> None:
    accepted: list[so.Signoff] = []
    for role, who in attempts:
        try:
            so.check(so.TOWNSHIP_PAYOUT_ROLES, accepted, role=role, signer_sub=who)
        except so.SignoffRefused as exc:
            assert exc.status == (403 if role not in so.TOWNSHIP_PAYOUT_ROLES else 409)
            continue
        accepted.append(so.Signoff(role, who))
    assert len({s.role for s in accepted}) == len(accepted) == len({s.signer_sub for s in accepted}) <= 3
    assert so.is_complete(so.TOWNSHIP_PAYOUT_ROLES, accepted) == (len(accepted) == 3)


def test_l4_county_level_needs_the_two_county_roles() -> None:
    assert so.required_roles("county") == ("county_civil_affairs", "county_finance")
    with pytest.raises(so.SignoffRefused) as wrong:
        so.check(so.COUNTY_ROLES, [], role="township_office_director", signer_sub="x")
    assert wrong.value.status == 403


@given(st.dates(date(2024, 1, 1), date(2030, 12, 31)), st.integers(1, 12))
def test_d5_gradual_exit_pays_n_months_from_a_first_of_month(start, months) -> None:
    first = start.replace(day=1)
    last = pr.gradual_exit_last_month(first, months)
    assert len(pr.months_between(first, last)) == months


def test_p5_month_rules() -> None:
    assert pr.parse_month("2026-11") == date(2026, 11, 1)
    for bad in ("2026-13", "26-11", "2026-1", "", "4262-08"):
        with pytest.raises(ValueError):
            pr.parse_month(bad)
    assert pr.stop_last_month(date(2027, 2, 1)) == date(2027, 1, 1)
    assert pr.stop_last_month(date(2027, 2, 15)) == date(2027, 2, 1)
    assert pr.paid_after_death(month=date(2026, 12, 1), paid_on=None, date_of_death=date(2026, 11, 20))
    assert not pr.paid_after_death(month=date(2026, 11, 1), paid_on=None, date_of_death=date(2026, 11, 20))
    assert pr.paid_after_death(month=None, paid_on=date(2026, 11, 21), date_of_death=date(2026, 11, 20))


def test_p3_clock_over_national_day_2026(tmp_path) -> None:
    cal = WorkingCalendar(data_dir=tmp_path / "none")
    due = cal.add_working_days(datetime(2026, 9, 29, 2, 0, tzinfo=timezone.utc), dd.P3_WORKING_DAYS)
    assert due.due == date(2026, 10, 12) and not due.provisional
    states = {d: dd.classify(d, due.due, dd.working_days_left(cal, d, due.due))
              for d in (date(2026, 9, 30), date(2026, 10, 5), date(2026, 10, 9), date(2026, 10, 10),
                        date(2026, 10, 12), date(2026, 10, 13))}
    assert states == {date(2026, 9, 30): "ok", date(2026, 10, 5): "ok", date(2026, 10, 9): "ok",
                      date(2026, 10, 10): "at_risk", date(2026, 10, 12): "at_risk", date(2026, 10, 13): "breached"}


def test_p3_a_year_without_calendar_data_counts_weekdays_and_never_crashes(tmp_path) -> None:
    cal = WorkingCalendar(data_dir=tmp_path / "none")
    assert dd.working_days_left(cal, date(2031, 1, 6), date(2031, 1, 10)) == 4
    due = cal.add_working_days(date(2031, 1, 6), 5)
    assert due.provisional and due.due == date(2031, 1, 13)


def test_idempotency_keys() -> None:
    assert ps.idempotency_key("p", 1) == "p" and ps.idempotency_key("p", 2) == "p:2"
    with pytest.raises(ValueError):
        ps.idempotency_key("p", 0)
    assert ps.retry_delay_s(1) == 5.0 and ps.retry_delay_s(50) == 600.0
