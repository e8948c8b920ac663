"""The end of a report: the summary card to confirm, then submit or cancel."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.incident_form import CANCEL, EDIT, SUBMIT
from actions.reporting import answers_from, decision_from, reset_report, sync_incident
from actions.services import UsesServices
from actions.turn import reporter
from routing.report import completeness, default_report_policy, summary_lines
from routing.triage import CIVIC, MEDIATION, POLICE, default_policy

# Truthful until handoffs land (dispatch, 12345 work orders, mediators): the report is
# stored and numbered for call-takers, and the citizen is told where else to turn.
NEXT_STEP = {
    POLICE: "文字报警正在接入110调度，紧急情况请同时拨打110或发短信到12110。",
    CIVIC: "12345转办正在接入中，您也可以拨打12345反映。",
    MEDIATION: "调解转办正在接入中，您也可以拨打12348或到街道人民调解委员会。",
}


def _buttons(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"title": t, "payload": f'/inform{{"answer": "{a}"}}'} for t, a in pairs]


class ActionAskReportConfirm(Action):
    """The summary card: every fact on its own line, what is still missing, and buttons."""

    def name(self) -> str:
        return "action_ask_report_confirm"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        slots = dict(tracker.slots)
        decision = decision_from(slots)
        if decision is None:
            return []
        answers = answers_from(slots)
        emergency = decision.call_110_now
        label = default_policy().label(decision.route, decision.category)
        lines = [f"请核对您的报警（{label}）："]
        lines += summary_lines(answers, decision.route, decision.category, emergency)
        score = completeness(answers, decision.route, decision.category, emergency)
        missing = score.missing_labels(default_report_policy())
        if missing:
            lines.append("还差：" + "、".join(missing))
        dispatcher.utter_message(
            text="\n".join(lines),
            buttons=_buttons(("提交", SUBMIT), ("修改", EDIT), ("取消", CANCEL)),
        )
        return []


class ActionFinishReport(UsesServices, Action):
    """Submits or cancels the stored incident and starts the next report afresh."""

    def name(self) -> str:
        return "action_finish_report"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        slots = dict(tracker.slots)
        number = slots.get("incident_number")
        incidents = self.services.incidents
        if slots.get("report_confirm") == CANCEL:
            if number:
                channel, sender_id = reporter(tracker)
                record = await incidents.get(number)
                if record is not None and record.is_open:
                    await incidents.cancel(number, channel, sender_id, "填写中取消")
            dispatcher.utter_message(response="utter_report_cancelled")
            return reset_report()
        decision = decision_from(slots)
        if decision is None or slots.get("report_confirm") != SUBMIT:
            return []
        if not number:  # only a report still without a place has no incident yet
            slots.setdefault("report_location", {"answer": "unknown", "text": "未提供"})
            for event in await sync_incident(self.services, tracker, slots, dispatcher):
                number = event["value"]
        await incidents.submit(number)
        dispatcher.utter_message(text=f"已提交，报警编号{number}。可在“我的报警”查看进度。")
        dispatcher.utter_message(text=NEXT_STEP[decision.route])
        return reset_report()
