"""Real-name registration as a Rasa form, and the self-service around it.

The slots only ever hold masked values (张*, 310***********123X, 138****5678): the clear
values go straight from the citizen's answer through routing.registration into sealed
columns. An emergency typed mid-form leaves the form at once for the report.
"""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.custom_forms import AnswerReadingForm, Events
from actions.reporting import FORM as INCIDENT_FORM
from actions.reporting import described, reset_report
from actions.services import UsesServices
from actions.turn import Turn, answer_buttons, reporter
from routing.registration import Step
from routing.report import clean
from routing.triage import triage

REG_FORM = "registration_form"
REGISTER, CHANGE_PHONE, SKIP = "register", "change_phone", "skip"
SLOTS = ("reg_consent", "reg_name", "reg_id", "reg_phone", "reg_code", "reg_confirm")
SUBMIT, EDIT, CANCEL, RESEND = "submit", "edit", "cancel", "resend"
_CANCEL_WORDS = re.compile(r"^(取消|取消登记|不登记了|算了|cancel)$", re.I)
_YES_WORDS = re.compile(r"^(同意|好|好的|可以|确认|确定|是|是的|对|ok|yes)$", re.I)
_NO_WORDS = re.compile(r"^(不同意|不|不要|暂不|暂不登记|以后再说|no)$", re.I)
# A command typed mid-form is no name, ID or phone: "我要实名登记" must not become the name.
COMMANDS = {"register", "change_phone", "my_info", "delete_my_data", "report_incident", "greet"}
ASKED = {
    "reg_name": "姓名",
    "reg_id": "证件号",
    "reg_phone": "手机号",
    "reg_code": "短信验证码",
}


def identity_lines(shown: dict[str, str]) -> list[str]:
    """The masked identity, one fact a line (the summary card and 查看我的信息)."""
    return [
        f"姓名：{shown.get('name', '未填')}",
        f"证件：{shown.get('id', '未填')}",
        f"手机：{shown.get('phone', '未填')}",
    ]


def required_for(slots: dict[str, Any]) -> list[str]:
    if slots.get("reg_mode") == SKIP:
        return []
    if slots.get("reg_mode") == CHANGE_PHONE:
        return ["reg_phone", "reg_code"]
    return list(SLOTS)


def reset_registration(mode: str | None = None) -> list[dict[str, Any]]:
    events = [SlotSet(name, None) for name in (*SLOTS, "reg_failures", "reg_interrupted")]
    return [*events, SlotSet("reg_mode", mode)]


class ValidateRegistrationForm(AnswerReadingForm):
    form = REG_FORM
    failures_slot = "reg_failures"

    def required_for(self, slots: dict[str, Any]) -> list[str]:
        return required_for(slots)

    def finished(self, slots: dict[str, Any]) -> bool:
        return bool(
            slots.get("reg_interrupted")
            or slots.get("reg_confirm") in (SUBMIT, CANCEL)
            or slots.get("reg_consent") == "no"
        )

    async def answer(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        turn: Turn,
        requested: str,
        slots: dict[str, Any],
    ) -> Events:
        typed = clean(turn.text)
        if typed:
            decision = triage(typed, reading=turn.reading)
            if decision.call_110_now:
                # Registration never stands between a person and help: the report starts now
                # (flagged unverified), registration can resume later from its draft.
                return [
                    SlotSet("reg_interrupted", True),
                    *reset_report(),
                    *described(typed, decision, turn.entities),
                ]
        if turn.button == CANCEL or _CANCEL_WORDS.match(typed):
            return [SlotSet("reg_confirm", CANCEL)]
        if requested in ASKED and turn.intent in COMMANDS and turn.confidence >= 0.8:
            dispatcher.utter_message(text=f"正在实名登记，请输入{ASKED[requested]}。")
            return [SlotSet(requested, None)]
        channel, sender_id = reporter(tracker)
        service = self.services.registration
        answer = turn.button or typed
        if requested == "reg_consent":
            if answer in ("yes",) or _YES_WORDS.match(answer):
                return [SlotSet("reg_consent", "yes")]
            if answer in ("no",) or _NO_WORDS.match(answer):
                return [SlotSet("reg_consent", "no")]
            return self._failed(dispatcher, slots, requested, "请点“同意并登记”，或“暂不登记”。")
        if requested == "reg_name":
            step = await service.give_name(channel, sender_id, typed)
        elif requested == "reg_id":
            step = await service.give_id(channel, sender_id, typed)
        elif requested == "reg_phone":
            step = await service.give_phone(channel, sender_id, typed)
            if step.ok:
                sent = await service.send_code(channel, sender_id)
                if not sent.ok:
                    dispatcher.utter_message(text=sent.hint)
                    return _without_sms(sent) or [SlotSet("reg_phone", None)]
                dispatcher.utter_message(text=f"验证码已发到{step.shown}，5分钟内有效。")
        elif requested == "reg_code":
            return await self._code(dispatcher, channel, sender_id, turn, typed, slots)
        else:
            return await self._confirm(dispatcher, channel, sender_id, answer, slots)
        if not step.ok:
            return self._failed(dispatcher, slots, requested, step.hint)
        return [SlotSet(requested, step.shown), SlotSet("reg_failures", {})]

    async def _code(
        self,
        dispatcher: CollectingDispatcher,
        channel: str,
        sender_id: str,
        turn: Turn,
        typed: str,
        slots: dict[str, Any],
    ) -> list[dict[str, Any]]:
        service = self.services.registration
        if turn.button == RESEND:
            sent = await service.send_code(channel, sender_id)
            dispatcher.utter_message(text="已重新发送验证码。" if sent.ok else sent.hint)
            return _without_sms(sent) or [SlotSet("reg_code", None)]
        if turn.button == CHANGE_PHONE:
            return [SlotSet("reg_phone", None), SlotSet("reg_code", None)]
        step = await service.check_code(channel, sender_id, typed)
        if not step.ok:
            return self._failed(dispatcher, slots, "reg_code", step.hint)
        if slots.get("reg_mode") == CHANGE_PHONE:
            changed = await service.apply_new_phone(channel, sender_id)
            dispatcher.utter_message(text=f"手机号已改为{changed.shown}。")
            return [SlotSet("reg_code", "ok"), SlotSet("reg_confirm", SUBMIT)]
        return [SlotSet("reg_code", "ok"), SlotSet("reg_failures", {})]

    async def _confirm(
        self,
        dispatcher: CollectingDispatcher,
        channel: str,
        sender_id: str,
        answer: str,
        slots: dict[str, Any],
    ) -> list[dict[str, Any]]:
        if answer == EDIT:
            return [SlotSet(s, None) for s in ("reg_name", "reg_id", "reg_phone", "reg_code")]
        if answer == SUBMIT or _YES_WORDS.match(answer):
            step = await self.services.registration.complete(channel, sender_id)
            if not step.ok:
                dispatcher.utter_message(text=step.hint)
                if step.code == "taken":
                    return [SlotSet("reg_id", None), SlotSet("reg_confirm", None)]
                return [SlotSet(s, None) for s in ("reg_name", "reg_id", "reg_confirm")]
            return [SlotSet("reg_confirm", SUBMIT)]
        dispatcher.utter_message(text="请点“确认登记”，或“重新填写”。")
        return [SlotSet("reg_confirm", None)]

    def _failed(
        self, dispatcher: CollectingDispatcher, slots: dict[str, Any], slot: str, hint: str
    ) -> Events:
        """A specific hint; at the limit also the ways out (110, report unregistered)."""
        counted, exhausted = self.count_failure(slots, slot)
        dispatcher.utter_message(text=hint)
        if exhausted:
            dispatcher.utter_message(
                text="多次没有通过。需要人工帮助请拨打110；紧急情况不用登记，直接告诉我发生了什么。",
                buttons=answer_buttons(("取消登记", CANCEL)),
            )
        return [SlotSet(slot, None), *counted]


class ActionAskRegConfirm(UsesServices, Action):
    def name(self) -> str:
        return "action_ask_reg_confirm"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        channel, sender_id = reporter(tracker)
        shown = await self.services.registration.summary(channel, sender_id)
        dispatcher.utter_message(
            text="\n".join(["请核对您的登记信息：", *identity_lines(shown)]),
            buttons=answer_buttons(("确认登记", SUBMIT), ("重新填写", EDIT), ("取消", CANCEL)),
        )
        return []


class ActionFinishRegistration(UsesServices, Action):
    """After the form: registered, declined, cancelled, or left for an emergency."""

    def name(self) -> str:
        return "action_finish_registration"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        slots = dict(tracker.slots)
        mode = slots.get("reg_mode")
        if mode == SKIP:
            return [SlotSet("reg_mode", None)]
        if slots.get("reg_interrupted"):
            dispatcher.utter_message(response="utter_emergency_first")
            return [SlotSet("reg_interrupted", None), FollowupAction(INCIDENT_FORM)]
        if slots.get("reg_consent") == "no":
            dispatcher.utter_message(response="utter_registration_declined")
            return reset_registration()
        if slots.get("reg_confirm") == CANCEL:
            channel, sender_id = reporter(tracker)
            if mode != CHANGE_PHONE:
                await self.services.registration.discard(channel, sender_id)
            dispatcher.utter_message(response="utter_registration_cancelled")
            return reset_registration()
        if slots.get("reg_confirm") == SUBMIT and mode != CHANGE_PHONE:
            dispatcher.utter_message(response="utter_registered")
        return reset_registration()


def _without_sms(sent: Step) -> Events:
    """No SMS gateway at all: asking for the phone again would loop, so the form ends."""
    return [SlotSet("reg_confirm", CANCEL)] if sent.code == "sms_unavailable" else []


class ActionStartRegistration(UsesServices, Action):
    """ "实名登记": starts (or resumes) the form, unless the citizen is registered already."""

    def name(self) -> str:
        return "action_start_registration"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        channel, sender_id = reporter(tracker)
        if await self.services.citizens.is_registered(channel, sender_id):
            dispatcher.utter_message(response="utter_already_registered")
            return [SlotSet("reg_mode", SKIP)]  # the form the rule runs next ends at once
        if tracker.get_slot("reg_mode") == REGISTER:  # left mid-way: resume
            return []
        return reset_registration(REGISTER)


class ActionChangePhone(UsesServices, Action):
    def name(self) -> str:
        return "action_change_phone"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        channel, sender_id = reporter(tracker)
        if not await self.services.citizens.is_registered(channel, sender_id):
            dispatcher.utter_message(response="utter_not_registered")
            return [SlotSet("reg_mode", SKIP)]
        return reset_registration(CHANGE_PHONE)


class ActionMyInfo(UsesServices, Action):
    def name(self) -> str:
        return "action_my_info"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        channel, sender_id = reporter(tracker)
        shown = await self.services.registration.profile(channel, sender_id)
        if not shown:
            dispatcher.utter_message(response="utter_not_registered")
            return []
        dispatcher.utter_message(
            text="\n".join(["您的登记信息：", *identity_lines(shown)]),
            buttons=[
                {"title": "修改手机号", "payload": "/change_phone"},
                {"title": "注销并删除我的信息", "payload": "/delete_my_data"},
            ],
        )
        return []


class ActionDeleteMyData(UsesServices, Action):
    """Erasure after an explicit confirmation; incidents stay, without the person."""

    def name(self) -> str:
        return "action_delete_my_data"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        turn = Turn.latest(tracker)
        channel, sender_id = reporter(tracker)
        if turn.button != "confirm":
            dispatcher.utter_message(
                text="注销后，您的姓名、证件号和手机号将被删除，无法恢复。"
                "已报的警情依法保留，但不再关联您的身份。确定注销吗？",
                buttons=[
                    {"title": "确定注销", "payload": '/delete_my_data{"answer": "confirm"}'},
                    {"title": "不注销了", "payload": "/greet"},
                ],
            )
            return []
        erased = await self.services.registration.erase(channel, sender_id)
        dispatcher.utter_message(
            text="已注销，您的个人信息已删除。" if erased else "您没有登记信息，无需注销。"
        )
        return reset_registration()
