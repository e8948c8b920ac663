"""The mediator's page behind the signed SMS link (`/m/<token>`): what the case is about, the
deadline, and the buttons 接单 / 不接 / 已到场 (已约定时间 for a booking), 查看联系电话.

The token (routing.handoff.links) is the credential: it names one assignment, is signed with
the link key and expires. The page shows the dispute's category, district, deadline and the
citizen's account with ID numbers and mobile numbers masked. The reporter's phone
(`routing.handoff.contacts.AuditedPhones`: the registered one, or one given in the report with
consent) is shown masked to the mediator the case is assigned to (accepted, on site), and in
full only after 查看联系电话 (`POST /m/<token>/reveal`), which writes an audit record each
time; the page answering it is not cached and the number is never logged. Answers go through
`MediationSupervisor.answer`, so a decline offers the case to the next mediator at once.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from routing.handoff.contacts import AuditedPhones, ReporterPhone
from routing.handoff.links import BadLink, verify_link
from routing.handoff.mediation import MediationSupervisor, assigned_to
from routing.handoff.messages import mask_id_numbers
from routing.identity import mask_mobiles_in_text
from routing.triage import default_policy
from store.mediation import ACCEPTED, OFFERED, ON_DUTY

logger = logging.getLogger(__name__)

STATE_TEXT = {
    OFFERED: "待接单",
    ACCEPTED: "已接单",
    "on_site": "已到场 / 已约定时间",
    "declined": "您已拒绝，案件已转交其他调解员",
    "expired": "超时未接单，案件已转交其他调解员",
    "cancelled": "报警人已撤销，无需处理",
}

NO_PHONE = (
    "报警人未留可联系的电话（未实名登记，也未在报警中同意联系）。请通过110指挥中心联系报警人。"
)

SupervisorGetter = Callable[[], MediationSupervisor | None]
PhonesGetter = Callable[[], AuditedPhones]
PORTAL = web.AppKey("mediator_portal", object)
PHONES = web.AppKey("mediator_portal_phones", object)


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="stylesheet" href="/static/chat.css"><title>{html.escape(title)}</title>'
        f"</head><body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>"
    )
    return web.Response(
        text=text,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},  # a citizen's account, often on a shared phone
    )


def _supervisor(request: web.Request) -> MediationSupervisor:
    getter: SupervisorGetter = request.app[PORTAL]  # type: ignore[assignment]
    supervisor = getter()
    if supervisor is None:
        raise web.HTTPServiceUnavailable(text="人民调解未配置。")
    return supervisor


def _claim(request: web.Request, supervisor: MediationSupervisor) -> int:
    d = supervisor.dispatcher
    try:
        return verify_link(d.link_key, request.match_info["token"], d.clock()).assignment_id
    except BadLink as exc:
        logger.warning("mediator link refused: %s", exc)
        raise web.HTTPForbidden(text="链接无效或已过期，请联系110指挥中心。") from None


def _when(supervisor: MediationSupervisor, at: datetime | None) -> str:
    if at is None:
        return "—"
    local = supervisor.dispatcher.schedule.local(at)
    return f"{local.month}月{local.day}日 {local:%H:%M}"


def _phones(request: web.Request) -> AuditedPhones:
    getter: PhonesGetter = request.app[PHONES]  # type: ignore[assignment]
    return getter()


async def view(request: web.Request) -> web.Response:
    """GET /m/{token}"""
    return await _render(request, revealed=False)


async def reveal(request: web.Request) -> web.Response:
    """POST /m/{token}/reveal: the reporter's phone in full, audited, for the mediator the
    case is assigned to while it is."""
    return await _render(request, revealed=True)


async def _render(request: web.Request, *, revealed: bool) -> web.Response:
    supervisor = _supervisor(request)
    assignment_id = _claim(request, supervisor)
    d = supervisor.dispatcher
    assignment = await d.desk.assignment(assignment_id)
    case = None if assignment is None else await d.desk.case(assignment.case_id)
    record = None if case is None else await d.incidents.get(case.number)
    if assignment is None or case is None or record is None:
        return _page("案件不存在", "<p>请联系110指挥中心。</p>", 404)
    assigned = assigned_to(case, assignment)
    if revealed and not assigned:
        return _page(
            "无法查看联系电话",
            "<p>只有接单的调解员在处理期间可以查看报警人联系电话。</p>",
            403,
        )
    answers = record.details.get("answers") or {}
    text = str((answers.get("description") or {}).get("text") or "（未填写）")
    account = mask_mobiles_in_text(mask_id_numbers(text))  # the phone: 查看联系电话 only
    contact = ""
    action = html.escape(request.path.removesuffix("/reveal"))
    if assigned:
        phones = _phones(request)
        if revealed:
            found = await phones.reveal(
                record, mediator_id=assignment.mediator_id, assignment_id=assignment.id
            )
            contact = _contact_line(found, shown=True)
        else:
            masked = await phones.masked(record)
            contact = _contact_line(masked, shown=False, action=action)
    elif assignment.state == OFFERED:
        contact = "<p>接单后可查看报警人联系电话。</p>"
    label = default_policy().label(record.route, record.category)
    if case.mode == ON_DUTY:
        deadline = f"<p>请于 <strong>{_when(supervisor, case.sla_due_at)}</strong> 前到场。</p>"
    else:
        deadline = (
            f"<p>非工作时间推送：请于 <strong>{_when(supervisor, case.rota_at)}</strong> 起"
            f"联系报警人预约调解时间，{_when(supervisor, case.booking_due_at)} 前完成预约。</p>"
        )
    state = STATE_TEXT.get(assignment.state, assignment.state)
    if case.state == "cancelled":
        state = STATE_TEXT["cancelled"]
    buttons = ""
    if assignment.state == OFFERED and case.state != "cancelled":
        buttons = (
            f'<form method="post" action="{action}/accept"><button>接单</button></form>'
            f'<form method="post" action="{action}/decline"><button>不接（转下一位）</button></form>'
        )
    elif assignment.state == ACCEPTED and case.state != "cancelled":
        done = "已到场" if case.mode == ON_DUTY else "已与报警人约定时间"
        buttons = f'<form method="post" action="{action}/arrive"><button>{done}</button></form>'
    body = (
        f"<p>案件编号：{html.escape(case.number)}</p>"
        f"<p>类型：{html.escape(label)}　区域：{html.escape(case.district or '区县不明')}</p>"
        f"<p>状态：{html.escape(state)}</p>{deadline}"
        f"<h2>报警人陈述</h2><p>{html.escape(account)}</p>{contact}"
        "<p>如发现暴力、威胁或持械等情况，请立即拨打110。</p>"
        f"{buttons}"
    )
    return _page("人民调解任务", body)


def _contact_line(found: ReporterPhone | str | None, *, shown: bool, action: str = "") -> str:
    """报警人联系电话: in full after a reveal, else masked with the button."""
    if found is None:
        return f"<p>{html.escape(NO_PHONE)}</p>"
    if shown:
        assert isinstance(found, ReporterPhone)
        number = html.escape(found.phone)
        return (
            f'<p>报警人联系电话：<a href="tel:{number}"><strong>{number}</strong></a>'
            "（本次查看已记录）</p>"
        )
    return (
        f"<p>报警人联系电话：{html.escape(str(found))}</p>"
        f'<form method="post" action="{action}/reveal"><button>查看联系电话</button></form>'
    )


async def answer(request: web.Request) -> web.Response:
    """POST /m/{token}/{action}: accept, decline or arrive; then back to the page."""
    supervisor = _supervisor(request)
    assignment_id = _claim(request, supervisor)
    action = request.match_info["action"]
    if action == "accept":
        await supervisor.answer(assignment_id, accepted=True)
    elif action == "decline":
        await supervisor.answer(assignment_id, accepted=False)
    elif action == "arrive":
        await supervisor.arrive(assignment_id)
    else:
        raise web.HTTPNotFound()
    raise web.HTTPSeeOther(location=request.path.rsplit("/", 1)[0])


def setup_portal(app: web.Application, supervisor: SupervisorGetter, phones: PhonesGetter) -> None:
    """Register `/m/{token}`; `supervisor()` gives the running mediation supervisor (None
    when mediation is not configured: the page says so), `phones()` the audited look-up of
    the reporter's phone."""
    app[PORTAL] = supervisor
    app[PHONES] = phones
    app.router.add_get("/m/{token}", view)
    app.router.add_post("/m/{token}/reveal", reveal)
    app.router.add_post("/m/{token}/{action}", answer)
