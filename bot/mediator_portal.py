"""The mediator's page behind the signed SMS link (`/m/<token>`): what the case is about, the
deadline, and the buttons 接单 / 不接 / 已到场 (已约定时间 for a booking).

The token (routing.handoff.links) is the credential: it names one assignment, is signed with
the link key and expires. The page shows the dispute's category, district, deadline and the
citizen's account with ID numbers masked, and mobile numbers in it masked until the mediator
accepts. The registered contact is not shown here (the mediator reaches the reporter through
the 110 platform until a contact lookup with its own audit exists). Answers go through `MediationSupervisor.answer`, so a decline offers the case
to the next mediator at once.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from routing.handoff.links import BadLink, verify_link
from routing.handoff.mediation import MediationSupervisor
from routing.handoff.messages import mask_id_numbers
from routing.identity import mask_phone
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

_MOBILE = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")

SupervisorGetter = Callable[[], MediationSupervisor | None]
PORTAL = web.AppKey("mediator_portal", object)


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


async def view(request: web.Request) -> web.Response:
    """GET /m/{token}"""
    supervisor = _supervisor(request)
    assignment_id = _claim(request, supervisor)
    d = supervisor.dispatcher
    assignment = await d.desk.assignment(assignment_id)
    case = None if assignment is None else await d.desk.case(assignment.case_id)
    record = None if case is None else await d.incidents.get(case.number)
    if assignment is None or case is None or record is None:
        return _page("案件不存在", "<p>请联系110指挥中心。</p>", 404)
    answers = record.details.get("answers") or {}
    account = mask_id_numbers(str((answers.get("description") or {}).get("text") or "（未填写）"))
    if assignment.state == OFFERED:  # contact details stay masked until the case is taken
        account = _MOBILE.sub(lambda m: mask_phone(m.group()), account)
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
    action = html.escape(request.path)
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
        f"<h2>报警人陈述</h2><p>{html.escape(account)}</p>"
        "<p>如发现暴力、威胁或持械等情况，请立即拨打110。</p>"
        f"{buttons}"
    )
    return _page("人民调解任务", body)


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


def setup_portal(app: web.Application, supervisor: SupervisorGetter) -> None:
    """Register `/m/{token}`; `supervisor()` gives the running mediation supervisor (None
    when mediation is not configured: the page says so)."""
    app[PORTAL] = supervisor
    app.router.add_get("/m/{token}", view)
    app.router.add_post("/m/{token}/{action}", answer)
