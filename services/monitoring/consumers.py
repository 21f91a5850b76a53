"""Monitoring's event entrypoints (thin; each handler is idempotent through the inbox)."""
from __future__ import annotations

from shared.events.eligibility import BenefitChanged, CaseOpened, DecisionMade
from shared.events.intake import ApplicationDeadline, ApplicationTransferred, ZeroReportFiled
from shared.events.monitoring import PartnerEventReported
from shared.events.payments import (DisbursementDeadline, DisbursementPaid, PaymentFlaggedForRecovery,
                                    ReserveFundAlert)
from shared.messaging.consumer import BatchEventHandler, EventHandler

from services.monitoring.indicators import IndicatorService
from services.monitoring.partners import PartnerService
from services.monitoring.register import RegisterService


def handlers(indicators: IndicatorService, register: RegisterService, partners: PartnerService) -> dict[str, EventHandler]:
    return {  # type: ignore[dict-item]
        CaseOpened.TYPE: indicators.on_case_opened,                     # I5
        DecisionMade.TYPE: register.on_decision_made,                   # M1, M5
        BenefitChanged.TYPE: register.on_benefit_changed,               # M1
        ApplicationTransferred.TYPE: register.on_application_transferred,  # M5
        ApplicationDeadline.TYPE: indicators.on_application_deadline,   # I3
        ZeroReportFiled.TYPE: indicators.on_zero_report,                # I4
        DisbursementPaid.TYPE: indicators.on_disbursement_paid,         # P3
        DisbursementDeadline.TYPE: indicators.on_disbursement_deadline,  # P3
        ReserveFundAlert.TYPE: indicators.on_reserve_alert,             # P4
        PaymentFlaggedForRecovery.TYPE: indicators.on_recovery_flagged,  # M6
        PartnerEventReported.TYPE: partners.on_partner_event,           # M2 (topic partner.events)
    }


def batch_handlers(indicators: IndicatorService, register: RegisterService) -> dict[str, BatchEventHandler]:
    """What a fetched batch stores set-based (every application produces one of each)."""
    return {  # type: ignore[dict-item]
        CaseOpened.TYPE: indicators.on_cases_opened,
        DecisionMade.TYPE: register.on_decisions_made,
    }
