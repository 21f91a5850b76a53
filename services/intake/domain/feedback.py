"""反馈 (I2): what the applicant and the channel are told at each turn, in plain words."""
from __future__ import annotations

from decimal import Decimal

PROGRAM_NAMES = {"dibao": "最低生活保障（低保）", "tekun": "特困人员救助供养", "linshi": "临时救助"}
DEPARTMENT_NAMES = {
    "medical": "医疗保障部门（医疗救助）", "education": "教育部门（教育救助）", "housing": "住房城乡建设部门（住房救助）",
    "employment": "人力资源社会保障部门（就业救助）", "rural_revitalization": "乡村振兴部门", "other": "相关部门",
}
OUTCOME_NAMES = {"approved": "审核确认通过", "single_person": "按单人户纳入", "gradual_exit": "给予渐退期",
                 "denied": "不符合条件", "transferred": "转相关部门办理"}


def _yuan(amount: Decimal | str | None) -> str | None:
    return None if amount is None else f"{Decimal(amount):.2f}"


def decision_text(program: str, outcome: str, monthly: Decimal | str | None, one_time: Decimal | str | None) -> str:
    text = f"您的{PROGRAM_NAMES.get(program, program)}申请：{OUTCOME_NAMES.get(outcome, outcome)}"
    if _yuan(monthly):
        text += f"，每月 {_yuan(monthly)} 元"
    if _yuan(one_time):
        text += f"，一次性 {_yuan(one_time)} 元"
    return text + "。"


def transfer_text(program: str, department: str, reason: str) -> str:
    return (f"您的{PROGRAM_NAMES.get(program, program)}申请已转{DEPARTMENT_NAMES.get(department, department)}"
            f"办理（{reason}）。")


def paid_text(program: str, amount: Decimal | str) -> str:
    return f"您的{PROGRAM_NAMES.get(program, program)}救助金 {_yuan(amount)} 元已发放，本次申请办结。"
