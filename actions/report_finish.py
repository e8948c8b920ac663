"""The end of a report: the summary card to confirm, then submit or cancel."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.incident_form import CANCEL, EDIT, SUBMIT
from actions.reporting import (
    TEXTS,
    answers_from,
    decision_from,
    language_of_slots,
    reset_report,
    say,
    sync_incident,
)
from actions.services import UsesServices
from actions.turn import answer_buttons, reporter
from routing.report import completeness, default_report_policy, summary_lines
from routing.triage import CIVIC, MEDIATION, POLICE, default_policy

# What happens next, truthfully: every route is relayed by the outbox (see routing/handoff);
# mediation goes to the district's mediator, at once in working hours, else to book a time.
NEXT_STEP = {
    POLICE: (
        "正在转给110接警员。紧急情况请同时拨打110或发短信到12110。",
        "It is being passed to 110. In an emergency also call 110 or text 12110.",
    ),
    CIVIC: (
        "正在转12345办理，进度可在“我的报警”查看。",
        "It is being passed to the 12345 hotline; see My reports for progress.",
    ),
    MEDIATION: (
        "正在转给所在街道的人民调解员：工作时间内会尽快联系您并安排到场，其他时间会在下一个"
        "工作日联系您约定时间。进度可在“我的报警”查看；如对方动手或威胁，请立即拨打110。",
        "It is being passed to a people's mediator for your district: in working hours they "
        "will contact you soon and come over; otherwise they will call on the next working day "
        "to book a time. See My reports for progress; if anyone turns violent, call 110.",
    ),
}
BUTTONS = {
    "zh": (("提交", SUBMIT), ("修改", EDIT), ("取消", CANCEL)),
    "en": (("Submit", SUBMIT), ("Change", EDIT), ("Cancel", CANCEL)),
}


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
        language = language_of_slots(slots)
        if language == "en":
            label = decision.category.replace("_", " ")
        else:
            label = default_policy().label(decision.route, decision.category)
        zh_check, en_check = TEXTS["check"]
        lines = [(en_check if language == "en" else zh_check).format(label=label)]
        lines += summary_lines(
            answers, decision.route, decision.category, emergency, language=language
        )
        score = completeness(answers, decision.route, decision.category, emergency)
        missing = score.missing_labels(default_report_policy(), language)
        if missing:
            zh_missing, en_missing = TEXTS["missing"]
            template = en_missing if language == "en" else zh_missing
            lines.append(template.format(items=(", " if language == "en" else "、").join(missing)))
        dispatcher.utter_message(text="\n".join(lines), buttons=answer_buttons(*BUTTONS[language]))
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
                    await incidents.cancel(number, channel, sender_id, TEXTS["cancel_reason"][0])
                    self.services.handoff_queued()
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
        self.services.handoff_queued()
        language = language_of_slots(slots)
        say(dispatcher, "submitted", language, number=number)
        dispatcher.utter_message(text=NEXT_STEP[decision.route][language == "en"])
        channel, sender_id = reporter(tracker)
        if language == "zh" and not await self.services.citizens.is_registered(channel, sender_id):
            dispatcher.utter_message(
                text="您还没有实名登记，完成登记后接警员核实更快。",
                buttons=[{"title": "实名登记", "payload": "/register"}],
            )
        return reset_report()
