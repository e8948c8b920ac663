"""我的报警: the citizen's own reports, their timeline, and withdrawing one."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.services import UsesServices
from actions.turn import Turn, reporter
from routing.report import clean, display_time
from routing.triage import default_policy
from store.citizens import same_citizen_channels
from store.incidents import IncidentError, IncidentRecord

SHOWN = 5
CANCEL_REASONS = ("误报", "已解决", "其他原因")


def _when(record: IncidentRecord) -> str:
    return display_time(record.created_at.isoformat()) or ""


def _line(record: IncidentRecord) -> str:
    label = default_policy().label(record.route, record.category)
    return f"{record.number} {label} {record.status_label}（{_when(record)}）"


def _payload(intent: str, **entities: str) -> str:
    body = ", ".join(f'"{k}": "{v}"' for k, v in entities.items())
    return f"/{intent}{{{body}}}"


class ActionMyIncidents(UsesServices, Action):
    """Lists the reports (open ones first); with a number, shows that one's timeline."""

    def name(self) -> str:
        return "action_my_incidents"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        channel, sender_id = reporter(tracker)
        number = _entity(tracker, "incident_number")
        incidents = self.services.incidents
        if number:
            record = await incidents.get(number)
            if record is None or not record.reported_by(channel, sender_id):
                dispatcher.utter_message(text="没有找到这条报警记录。")
                return []
            lines = [_line(record)]
            for event in await incidents.timeline(number):
                lines.append(f"{display_time(event.at.isoformat()) or ''} {event.label}")
            buttons = []
            if record.is_open:
                buttons.append(
                    {
                        "title": "撤销这条报警",
                        "payload": _payload("cancel_incident", incident_number=number),
                    }
                )
            dispatcher.utter_message(text="\n".join(lines), buttons=buttons)
            return []
        records = await incidents.for_reporter(same_citizen_channels(channel), sender_id)
        if not records:
            dispatcher.utter_message(response="utter_no_incidents")
            return []
        lines = [f"您的报警（共{len(records)}条）："] + [_line(r) for r in records[:SHOWN]]
        buttons = [
            {
                "title": f"查看 {r.number}",
                "payload": _payload("my_incidents", incident_number=r.number),
            }
            for r in records[:SHOWN]
        ]
        dispatcher.utter_message(text="\n".join(lines), buttons=buttons)
        return []


class ActionCancelIncident(UsesServices, Action):
    """Withdraws one of the citizen's open reports, asking which one and why first."""

    def name(self) -> str:
        return "action_cancel_incident"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        channel, sender_id = reporter(tracker)
        incidents = self.services.incidents
        number = _entity(tracker, "incident_number")
        reason = _entity(tracker, "answer")
        if not number:
            mine = await incidents.for_reporter(same_citizen_channels(channel), sender_id)
            open_ones = [r for r in mine if r.is_open]
            if not open_ones:
                dispatcher.utter_message(text="您没有可以撤销的报警。")
                return []
            dispatcher.utter_message(
                text="要撤销哪一条报警？",
                buttons=[
                    {
                        "title": _line(r),
                        "payload": _payload("cancel_incident", incident_number=r.number),
                    }
                    for r in open_ones[:SHOWN]
                ],
            )
            return []
        if not reason:
            dispatcher.utter_message(
                text=f"撤销报警{number}，原因是？",
                buttons=[
                    {
                        "title": why,
                        "payload": _payload("cancel_incident", incident_number=number, answer=why),
                    }
                    for why in CANCEL_REASONS
                ],
            )
            return []
        try:
            await incidents.cancel(number, channel, sender_id, clean(reason)[:200])
        except IncidentError:
            dispatcher.utter_message(text="这条报警无法撤销（已办结、已撤销或不存在）。")
            return []
        self.services.handoff_queued()
        dispatcher.utter_message(text=f"报警{number}已撤销。如仍有危险，请立即拨打110。")
        return []


def _entity(tracker: Tracker, name: str) -> str | None:
    turn = Turn.latest(tracker)
    value = next((e.get("value") for e in turn.entities if e.get("entity") == name), None)
    return str(value) if value else None
