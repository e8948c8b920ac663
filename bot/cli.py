"""`alarmbot`: run the service, train the model, chat in the terminal, manage the database."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import secrets
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported lazily at run time: the CLI starts fast
    from datetime import datetime

    from store.mediation import AssignmentView, MediationCaseView

logger = logging.getLogger("alarmbot")


def _settings(args: argparse.Namespace):  # noqa: ANN202 - Settings, imported lazily
    from bot.settings import Settings

    overrides = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None):
        overrides["port"] = args.port
    return Settings.from_env(**overrides)


def _setup_logging(settings) -> None:  # noqa: ANN001
    from bot.observability import configure_logging

    configure_logging(settings.log_level, settings.log_format)


def cmd_run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bot.app import create_app

    settings = _settings(args)
    _setup_logging(settings)
    if settings.env == "dev":
        logger.warning("ALARMBOT_ENV=dev: local development settings (not for production)")
    print(f"alarmbot 正在启动… 打开 http://{settings.host}:{settings.port}/ 开始对话", flush=True)
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=None,
        print=lambda _: None,
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from bot.model import model_path_for, train_if_needed

    settings = _settings(args)
    target = model_path_for(settings.project_dir, settings.models_dir)
    if target.exists() and not args.force:
        print(f"模型已是最新（训练数据未变）：{target}")
        return 0
    print(f"训练数据有变化，开始训练 Rasa 模型 → {target.name}（约30-60秒）", flush=True)
    started = time.perf_counter()
    path, _ = train_if_needed(settings.project_dir, settings.models_dir, force=args.force)
    print(f"训练完成，用时 {time.perf_counter() - started:.0f} 秒：{path}")
    return 0


async def _chat(settings, sender: str) -> int:  # noqa: ANN001
    """Serve the real app on a free loopback port and talk to /api/chat: the web's path."""
    import aiohttp
    from aiohttp import web

    from bot.app import RUNTIME, create_app

    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - aiohttp has no public accessor
    print("正在加载模型…", flush=True)
    await app[RUNTIME].ready.wait()
    if app[RUNTIME].dialogue is None:
        print(f"错误：模型加载失败：{app[RUNTIME].load_error}", file=sys.stderr)
        await runner.cleanup()
        return 1
    print("已就绪。输入消息后回车；按钮用编号选择；输入 /quit 退出。\n", flush=True)
    buttons: list[dict] = []
    loop = asyncio.get_running_loop()
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            while True:
                try:
                    line = await loop.run_in_executor(None, input, "您：")
                except EOFError:
                    break
                line = line.strip()
                if line in ("/quit", "/exit"):
                    break
                body: dict = {"sender": sender}
                if line.isdigit() and 1 <= int(line) <= len(buttons):
                    body["payload"] = buttons[int(line) - 1]["payload"]
                else:
                    body["text"] = line
                async with http.post("/api/chat", json=body) as response:
                    data = await response.json()
                if response.status != 200:
                    print(f"【错误 {response.status}】{data.get('message', data)}")
                    continue
                buttons = []
                for message in data["messages"]:
                    if message.get("text"):
                        print(f"助手：{message['text']}")
                    for button in message.get("buttons", []):
                        buttons.append(button)
                        print(f"    [{len(buttons)}] {button['title']}")
    finally:
        await runner.cleanup()
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _setup_logging(replace(settings, log_level="WARNING"))
    sender = args.sender or f"cli-{getpass.getuser()}"
    return asyncio.run(_chat(settings, sender))


def _triage_service(settings):  # noqa: ANN001, ANN202
    from bot.model import find_model
    from bot.triage_service import TriageService

    model = find_model(settings.project_dir, settings.models_dir, settings.model_path)
    return TriageService.load(model)


def _print_decision(decision) -> None:  # noqa: ANN001
    from routing.triage import default_policy

    policy = default_policy()
    print(f"去向：{policy.route_labels[decision.route]}（{decision.route}）")
    print(f"类别：{policy.label(decision.route, decision.category)}（{decision.category}）")
    print(f"紧急程度：{decision.urgency}　涉及暴力：{'是' if decision.aggression else '否'}")
    print(
        f"立即拨打110：{'是' if decision.call_110_now else '否'}　把握：{decision.confidence:.0%}"
    )
    print("理由：")
    for reason in decision.reasons:
        print(f"  - {reason}")


async def _triage_jsonl(service, source) -> int:  # noqa: ANN001
    """One JSON line out per line in; a broken line is reported and skipped."""
    failures = 0
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                raise ValueError('需要 {"id": ..., "text": "..."}')
        except ValueError as exc:
            failures += 1
            print(f"第{number}行无法读取：{exc}", file=sys.stderr)
            print(json.dumps({"line": number, "error": "invalid_line"}), flush=True)
            continue
        decision = await service.decide(item["text"])
        fields = ("route", "category", "aggression", "urgency", "confidence", "call_110_now")
        row = {"id": item.get("id"), **{k: getattr(decision, k) for k in fields}}
        row["reasons"] = list(decision.reasons)
        print(json.dumps(row, ensure_ascii=False), flush=True)
    return 1 if failures else 0


def cmd_triage(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _setup_logging(replace(settings, log_level="WARNING"))
    if args.keywords_only:
        from bot.triage_service import keyword_decision

        if args.jsonl or not args.text:
            print("错误：--keywords-only 只用于单条文本", file=sys.stderr)
            return 2
        _print_decision(keyword_decision(args.text))
        return 0
    if bool(args.jsonl) == bool(args.text):
        print("错误：请给出一条文本，或用 --jsonl FILE（- 表示标准输入）", file=sys.stderr)
        return 2
    service = _triage_service(settings)
    if args.text:
        _print_decision(asyncio.run(service.decide(args.text)))
        return 0
    if args.jsonl == "-":
        return asyncio.run(_triage_jsonl(service, sys.stdin))
    with open(args.jsonl, encoding="utf-8") as source:
        return asyncio.run(_triage_jsonl(service, source))


def cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bot.evaluation import Scores, load_cases, summary, write_report
    from bot.triage_service import keyword_decision

    settings = _settings(args)
    _setup_logging(replace(settings, log_level="WARNING"))
    files = sorted(Path(args.heldout).glob(f"{args.set}_*.jsonl"))
    if not files:
        print(f"错误：{args.heldout} 下没有 {args.set}_*.jsonl", file=sys.stderr)
        return 1
    cases = load_cases(files)
    service = _triage_service(settings)

    async def decide_all():  # noqa: ANN202
        return [await service.decide(case.text) for case in cases]

    model = Scores("model + rules", cases, asyncio.run(decide_all()))
    baseline = Scores("keywords only", cases, [keyword_decision(c.text) for c in cases])
    report = write_report(model, baseline, Path(args.out), args.set)
    print(summary(model))
    print(summary(baseline))
    print(f"报告：{report}")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from store import migrate
    from store.db import normalise_url, redact_url

    url = normalise_url(_settings(args).database_url)
    redacted = redact_url(url)
    if args.db_command == "upgrade":
        migrate.upgrade(url, args.revision)
        print(f"数据库已升级到 {args.revision}：{redacted}")
    elif args.db_command == "downgrade":
        migrate.downgrade(url, args.revision)
        print(f"数据库已回退到 {args.revision}：{redacted}")
    else:
        print(migrate.current(url))
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    """What operators need when a handoff is stuck: what is pending or dead, and why."""
    from store.crypto import PiiCipher
    from store.db import Database
    from store.outbox import Outbox

    settings = _settings(args)

    async def act() -> int:
        db = Database(settings.database_url)
        try:
            outbox = Outbox(db, PiiCipher(settings.pii_key))
            if args.outbox_command == "retry":
                if not await outbox.retry(args.id):
                    print(f"第 {args.id} 条不是失败（dead）状态，未重发。", file=sys.stderr)
                    return 1
                print(f"第 {args.id} 条已重新排队，将立即重发。")
                return 0
            items = await outbox.list(status=args.status, limit=args.limit)
            counts = await outbox.counts()
            print("　".join(f"{status}：{count}" for status, count in counts.items()))
            for item in items:
                error = f"　错误：{item.last_error}" if item.last_error else ""
                print(
                    f"#{item.id}　报警{item.incident_number}　{item.target}/{item.kind}　"
                    f"{item.status}　已试{item.attempts}次　下次{item.next_attempt_at:%m-%d %H:%M}"
                    f"{error}"
                )
            if not items:
                print("没有符合条件的记录。")
            return 0
        finally:
            await db.dispose()

    return asyncio.run(act())


def cmd_wechat(args: argparse.Namespace) -> int:
    """`wechat menu`: create the official account's menu (我要报警 / 我的报警 / 个人信息,
    with the EventKeys /wechat maps to dialogue payloads); `--dry-run` prints the JSON."""
    from bot.channels.wechat.client import build_api
    from bot.channels.wechat.config import LOCAL_API
    from bot.channels.wechat.handler import MENU_BUTTONS, menu_definition
    from bot.channels.wechat.local import LocalWeChatApi
    from store.db import Database
    from store.wechat import KeyStore

    menu = menu_definition()
    if args.dry_run:
        print(json.dumps(menu, ensure_ascii=False, indent=2))
        return 0
    settings = _settings(args)
    config = settings.wechat
    if config is None or not config.can_send:
        print(
            "需要 WECHAT_TOKEN、WECHAT_APP_ID 和 WECHAT_APP_SECRET 才能创建菜单"
            "（--dry-run 只打印菜单JSON）。",
            file=sys.stderr,
        )
        return 2

    async def create() -> None:
        db = Database(settings.database_url)
        local = None
        try:
            wanted = config
            if config.api_base_url == LOCAL_API:
                local = await LocalWeChatApi().start()
                wanted = replace(config, api_base_url=local.url)
                print(f"LOCAL 微信接口替身 {local.url}（仅开发用，菜单不会到微信）")
            api = build_api(wanted, KeyStore(db))  # the workers' shared access token
            assert api is not None
            await api.create_menu(menu)
        finally:
            if local is not None:
                await local.stop()
            await db.dispose()

    asyncio.run(create())
    print("菜单已创建：" + " / ".join(name for name, _ in MENU_BUTTONS))
    return 0


def cmd_mediation(args: argparse.Namespace) -> int:
    """Mediation cases for operators: state, who has it, the deadline, escalations. Ids,
    districts and times only: names, phones and the report stay sealed."""
    from store.db import Database
    from store.mediation import MediationDesk

    settings = _settings(args)

    async def act() -> int:
        db = Database(settings.database_url)
        try:
            desk = MediationDesk(db)
            counts = await desk.counts()
            cases = await desk.list_cases(tuple(args.status or ()), limit=args.limit)
        finally:
            await db.dispose()
        print("　".join(f"{state}：{count}" for state, count in counts.items()))
        for case, latest in cases:
            print(mediation_line(case, latest))
        if not cases:
            print("没有符合条件的案件。")
        return 0

    return asyncio.run(act())


def mediation_line(
    case: MediationCaseView, latest: AssignmentView | None, now: datetime | None = None
) -> str:
    """One case for `alarmbot mediation list`, times in Shanghai."""
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo

    from routing.schedule import DEFAULT_TZ
    from store.mediation import CASE_ON_SITE, CASE_STATE_LABELS, ON_DUTY

    tz = ZoneInfo(DEFAULT_TZ)
    now = now or datetime.now(timezone.utc)

    def at(moment: datetime | None) -> str:
        return "—" if moment is None else f"{moment.astimezone(tz):%m-%d %H:%M}"

    due = case.sla_due_at if case.mode == ON_DUTY else case.booking_due_at
    kind = "到场" if case.mode == ON_DUTY else "预约"
    overdue = due is not None and now >= due and case.state not in (CASE_ON_SITE, "cancelled")
    parts = [
        f"#{case.id}",
        f"报警{case.number}",
        case.district or "区县不明",
        f"{CASE_STATE_LABELS.get(case.state, case.state)}（{case.state}）",
        f"第{case.round}轮",
        "调解员 —" if latest is None else f"调解员 {latest.mediator_id}（{latest.state}）",
        f"{kind}时限 {at(due)}" + ("【已超时】" if overdue else ""),
    ]
    if case.retry_at is not None:
        parts.append(f"重新联系 {at(case.retry_at)}")
    if case.escalation:
        parts.append(f"升级 {case.escalation} {at(case.escalated_at)}")
    return "　".join(parts)


def cmd_mediators(args: argparse.Namespace) -> int:
    """Check a roster file (every problem at once) and install it where every worker of this
    machine reads it; prints counts only, never names or phones."""
    import shutil
    from pathlib import Path

    from routing.handoff.wiring import INSTALLED_ROSTERS
    from routing.mediators import DISTRICTS, RosterError, import_roster

    source = Path(args.file)
    try:
        roster = import_roster(source)
    except RosterError as exc:
        print(f"名册有误（{exc.origin}），共 {len(exc.problems)} 处：", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    active = [m for m in roster.mediators if m.active]
    covered = {d for m in active for d in m.districts}
    print(
        f"名册检查通过：{len(roster)} 名调解员（在岗 {len(active)} 名），"
        f"覆盖 {len(covered)}/{len(DISTRICTS)} 个区。"
    )
    uncovered = [d for d in DISTRICTS if d not in covered]
    if uncovered:
        print("无人覆盖的区（案件将转相邻区）：" + "、".join(uncovered))
    if args.check:
        return 0
    var_dir = _settings(args).var_dir
    var_dir.mkdir(parents=True, exist_ok=True)
    name = "mediators.csv" if source.suffix.lower() == ".csv" else "mediators.yml"
    for other in INSTALLED_ROSTERS:
        if other != name:
            (var_dir / other).unlink(missing_ok=True)
    shutil.copyfile(source, var_dir / name)
    print(f"已安装到 {var_dir / name}，重启服务后生效（MEDIATORS_FILE 若已设置则以它为准）。")
    return 0


def cmd_keygen(_args: argparse.Namespace) -> int:
    from store.crypto import KEY_ENV, encode_key

    print(f"{KEY_ENV}={encode_key(secrets.token_bytes(32))}")
    return 0


def quiet_third_parties() -> None:
    """No telemetry (this network reaches no one) and no start-up noise from TF/SQLAlchemy."""
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    if not sys.warnoptions:  # `python -W ...` / PYTHONWARNINGS still win
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alarmbot",
        description="alarmbot：110文字报警助手（微信/H5），分流到110、12345或人民调解。",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser("run", help="启动服务（H5聊天页和API）")
    run.add_argument("--host", help="监听地址（默认 127.0.0.1 或 ALARMBOT_HOST）")
    run.add_argument("--port", type=int, help="端口（默认 8080 或 ALARMBOT_PORT）")
    run.set_defaults(func=cmd_run)

    train = sub.add_parser("train", help="训练 Rasa 模型（数据未变时跳过）")
    train.add_argument("--force", action="store_true", help="即使数据未变也重新训练")
    train.set_defaults(func=cmd_train)

    chat = sub.add_parser("chat", help="在终端里和机器人对话（与网页同一路径）")
    chat.add_argument("--sender", help="会话ID（默认 cli-<用户名>，再次进入可续聊）")
    chat.set_defaults(func=cmd_chat)

    tri = sub.add_parser("triage", help="判断一条报警该去110、12345还是人民调解，并说明理由")
    tri.add_argument("text", nargs="?", help="报警内容")
    tri.add_argument(
        "--jsonl", metavar="FILE", help='逐行读取 {"id","text"}，逐行输出JSON（- 为标准输入）'
    )
    tri.add_argument("--keywords-only", action="store_true", help="只用关键词规则（对照基线）")
    tri.set_defaults(func=cmd_triage)

    ev = sub.add_parser("eval", help="在留出测试集上评估分流，写 reports/triage.md 和图表")
    ev.add_argument("--heldout", default="tests/data", help="heldout_*.jsonl 所在目录")
    ev.add_argument(
        "--set",
        default="heldout",
        choices=("heldout", "dev"),
        help="评估哪一组：heldout（留出测试集）或 dev（调数据时用的开发集）",
    )
    ev.add_argument("--out", default="reports", help="报告输出目录")
    ev.set_defaults(func=cmd_eval)

    db = sub.add_parser("db", help="数据库迁移（Alembic）")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION")
    db_sub.required = True
    up = db_sub.add_parser("upgrade", help="升级到最新（或指定）版本")
    up.add_argument("revision", nargs="?", default="head")
    down = db_sub.add_parser("downgrade", help="回退一个（或到指定）版本")
    down.add_argument("revision", nargs="?", default="-1")
    db_sub.add_parser("current", help="显示数据库当前版本")
    db.set_defaults(func=cmd_db)

    outbox = sub.add_parser("outbox", help="查看或重发转办（110、12345、调解）队列")
    outbox_sub = outbox.add_subparsers(dest="outbox_command", metavar="ACTION")
    outbox_sub.required = True
    listing = outbox_sub.add_parser("list", help="列出转办记录（最新在前）")
    listing.add_argument(
        "--status", choices=["pending", "sending", "sent", "dead"], help="只看某种状态"
    )
    listing.add_argument("--limit", type=int, default=50, help="最多显示几条（默认50）")
    retry = outbox_sub.add_parser("retry", help="把一条失败（dead）的转办重新排队")
    retry.add_argument("id", type=int, help="记录编号（outbox list 里的 #）")
    outbox.set_defaults(func=cmd_outbox)

    mediation = sub.add_parser("mediation", help="人民调解案件（状态、调解员、时限、升级）")
    mediation_sub = mediation.add_subparsers(dest="mediation_command", required=True)
    cases = mediation_sub.add_parser("list", help="列出调解案件（最新在前，不含个人信息）")
    cases.add_argument(
        "--status",
        action="append",
        choices=["open", "accepted", "on_site", "waiting", "exhausted", "cancelled"],
        help="只看某种状态（可重复；exhausted = 两轮无人接单，需人工处理）",
    )
    cases.add_argument("--limit", type=int, default=50, help="最多显示几条（默认50）")
    mediation.set_defaults(func=cmd_mediation)

    mediators = sub.add_parser("mediators", help="人民调解员名册")
    mediators_sub = mediators.add_subparsers(dest="mediators_command", required=True)
    imp = mediators_sub.add_parser("import", help="检查名册文件（YAML/CSV）并安装到 var/")
    imp.add_argument("file", help="名册文件，格式见 routing/mediators.example.yml")
    imp.add_argument("--check", action="store_true", help="只检查，不安装")
    mediators.set_defaults(func=cmd_mediators)

    wx = sub.add_parser("wechat", help="微信公众号")
    wx_sub = wx.add_subparsers(dest="wechat_command", required=True)
    menu = wx_sub.add_parser("menu", help="创建公众号菜单（我要报警 / 我的报警 / 个人信息）")
    menu.add_argument("--dry-run", action="store_true", help="只打印菜单JSON，不调用微信")
    wx.set_defaults(func=cmd_wechat)

    keygen = sub.add_parser("keygen", help="生成个人信息加密密钥（ALARMBOT_PII_KEY）")
    keygen.set_defaults(func=cmd_keygen)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    quiet_third_parties()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line for operators instead of a traceback
        from bot.settings import SettingsError

        kind = "配置错误" if isinstance(exc, SettingsError) else "错误"
        print(f"{kind}：{exc}", file=sys.stderr)
        if os.environ.get("ALARMBOT_DEBUG"):
            raise
        return 1


if __name__ == "__main__":
    sys.exit(main())
