"""Tables. Columns ending in `_sealed` hold AES-GCM ciphertext (see `store.crypto`)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import overload

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import declarative_base

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
Base = declarative_base(metadata=MetaData(naming_convention=NAMING))

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@overload
def as_utc(moment: datetime) -> datetime: ...
@overload
def as_utc(moment: None) -> None: ...
def as_utc(moment: datetime | None) -> datetime | None:
    """A timestamp read back, in UTC: SQLite returns timezone columns naive, and we only
    ever store UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


class Citizen(Base):
    """A person behind a channel identity; identity columns are filled by registration."""

    __tablename__ = "citizens"
    __table_args__ = (UniqueConstraint("channel", "sender_id", name="uq_citizens_channel_sender"),)

    id = Column(BigId, primary_key=True)
    channel = Column(String(16), nullable=False)
    sender_id = Column(String(128), nullable=False)
    status = Column(String(16), nullable=False, default="unregistered")
    name_sealed = Column(LargeBinary)
    id_number_sealed = Column(LargeBinary)
    id_number_hash = Column(String(64), index=True)
    phone_sealed = Column(LargeBinary)
    phone_hash = Column(String(64), index=True)
    id_kind = Column(String(24))
    registered_at = Column(DateTime(timezone=True))
    erased_at = Column(DateTime(timezone=True))
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at = Column(DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)


class Conversation(Base):
    """One per channel identity: the thread a call-taker reads as a transcript."""

    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("channel", "sender_id", name="uq_conversations_channel_sender"),
    )

    id = Column(BigId, primary_key=True)
    channel = Column(String(16), nullable=False)
    sender_id = Column(String(128), nullable=False)
    citizen_id = Column(BigId, ForeignKey("citizens.id", ondelete="SET NULL"))
    started_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    last_message_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    message_count = Column(Integer, nullable=False, default=0)


class Message(Base):
    """Every user and bot message, text sealed because citizens type personal data."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_conversation_created", "conversation_id", "id"),)

    id = Column(BigId, primary_key=True)
    conversation_id = Column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False
    )
    direction = Column(String(3), nullable=False)  # "in" from the citizen, "out" from the bot
    channel = Column(String(16), nullable=False)
    sender_id = Column(String(128), nullable=False)
    content_sealed = Column(LargeBinary, nullable=False)  # JSON: text, payload, buttons
    intent = Column(String(64))
    request_id = Column(String(32))
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)


class AuditEntry(Base):
    """Who did what to which record; details never carry personal data."""

    __tablename__ = "audit_log"

    id = Column(BigId, primary_key=True)
    at = Column(DateTime(timezone=True), nullable=False, default=utcnow, index=True)
    actor = Column(String(64), nullable=False)
    action = Column(String(64), nullable=False)
    target_type = Column(String(32))
    target_id = Column(String(64))
    details = Column(JSON, nullable=False, default=dict)


class TrackerEvent(Base):
    """Rasa dialogue events, sealed: slots and user texts carry personal data."""

    __tablename__ = "tracker_events"
    __table_args__ = (UniqueConstraint("sender_id", "seq", name="uq_tracker_events_sender_seq"),)

    id = Column(BigId, primary_key=True)
    sender_id = Column(String(255), nullable=False)
    seq = Column(Integer, nullable=False)
    type_name = Column(String(64), nullable=False)
    timestamp = Column(Float)
    data_sealed = Column(LargeBinary, nullable=False)


class Incident(Base):
    """One report, from first message (draft) to closure; what it says is sealed.

    `number` is what a citizen reads out on the phone, so it is short and tells the day;
    `missing` holds field keys only, never values, so it can stay in clear.
    """

    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_reporter", "channel", "sender_id", "created_at"),
        Index("ix_incidents_queue", "status", "urgency", "created_at"),
    )

    id = Column(BigId, primary_key=True)
    number = Column(String(16), nullable=False, unique=True)
    channel = Column(String(16), nullable=False)
    sender_id = Column(String(128), nullable=False)
    citizen_id = Column(BigId, ForeignKey("citizens.id", ondelete="SET NULL"), index=True)
    route = Column(String(16), nullable=False)  # police | 12345 | mediation
    category = Column(String(32), nullable=False)
    urgency = Column(String(16), nullable=False)  # immediate | urgent | normal | low
    call_110_now = Column(Boolean, nullable=False, default=False)
    aggression = Column(Boolean, nullable=False, default=False)
    emergency = Column(Boolean, nullable=False, default=False)  # came by the fast path
    verified = Column(Boolean, nullable=False, default=False)  # reporter was registered
    status = Column(String(24), nullable=False, default="draft")
    details_sealed = Column(LargeBinary, nullable=False)  # JSON dict of the report fields
    completeness = Column(Float, nullable=False, default=0.0)
    missing = Column(JSON, nullable=False, default=list)
    district = Column(String(32))  # Shanghai district, for assigning a mediator
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at = Column(DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)
    submitted_at = Column(DateTime(timezone=True))
    closed_at = Column(DateTime(timezone=True))


class IncidentEvent(Base):
    """Append-only timeline of an incident; the free-text note may name people, so sealed."""

    __tablename__ = "incident_events"
    __table_args__ = (Index("ix_incident_events_incident", "incident_id", "id"),)

    id = Column(BigId, primary_key=True)
    incident_id = Column(BigId, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False)
    at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    kind = Column(String(24), nullable=False)
    status = Column(String(24))  # the status after the event
    actor = Column(String(64), nullable=False)  # citizen, system, call_taker:<id>
    note_sealed = Column(LargeBinary)


class IncidentCounter(Base):
    """The last incident number handed out per Shanghai day (YYYYMMDD)."""

    __tablename__ = "incident_counters"

    day = Column(String(8), primary_key=True)
    last = Column(Integer, nullable=False)


class Attachment(Base):
    """A photo, voice note or video, kept in the database so every worker can serve it.

    Uploads may arrive before the incident exists, hence the nullable link and the sender.
    """

    __tablename__ = "attachments"
    __table_args__ = (Index("ix_attachments_sender", "channel", "sender_id"),)

    id = Column(BigId, primary_key=True)
    incident_id = Column(BigId, ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    channel = Column(String(16), nullable=False)
    sender_id = Column(String(128), nullable=False)
    kind = Column(String(16), nullable=False)  # image | voice | video
    mime = Column(String(64), nullable=False)
    size = Column(Integer, nullable=False)
    sha256 = Column(String(64), nullable=False)
    content_sealed = Column(LargeBinary, nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)


class OutboxMessage(Base):
    """A handoff to another system (110 CAD, 12345, mediation, SMS), written in the same
    transaction as the incident change it reports, then delivered by a relay.

    The payload is sealed (it carries the report); `last_error` is ours and never quotes a
    receiver's answer, so it stays in clear for operators. `claimed_until` is a lease: a
    worker that dies mid-send loses its claim and another worker sends the row again, under
    the same `idempotency_key`.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_incident", "incident_id", "target", "id"),
    )

    id = Column(BigId, primary_key=True)
    incident_id = Column(BigId, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False)
    target = Column(String(24), nullable=False)  # cad110 | workorder12345 | mediation | sms
    idempotency_key = Column(String(64), nullable=False, unique=True)
    kind = Column(String(8), nullable=False)  # create | update | cancel
    payload_sealed = Column(LargeBinary, nullable=False)  # JSON: incident snapshot
    status = Column(String(8), nullable=False, default="pending")  # pending|sending|sent|dead
    attempts = Column(Integer, nullable=False, default=0)  # claims so far, crashed ones too
    next_attempt_at = Column(DateTime(timezone=True), nullable=False)
    claimed_by = Column(String(64))  # "<worker>#<claim token>" while sending
    claimed_until = Column(DateTime(timezone=True))
    last_error = Column(String(300))
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    sent_at = Column(DateTime(timezone=True))
    external_ref = Column(String(64))  # the receiver's id for what we sent


class OutboxAttempt(Base):
    """One delivery attempt of an outbox row, kept for operators; never personal data."""

    __tablename__ = "outbox_attempts"
    __table_args__ = (Index("ix_outbox_attempts_outbox", "outbox_id", "id"),)

    id = Column(BigId, primary_key=True)
    outbox_id = Column(BigId, ForeignKey("outbox.id", ondelete="CASCADE"), nullable=False)
    at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    worker = Column(String(64))
    ok = Column(Boolean, nullable=False)
    status_code = Column(Integer)
    error = Column(String(300))
    duration_ms = Column(Integer, nullable=False, default=0)


class RegistrationDraft(Base):
    """What a citizen has given so far while registering: each value checked before it is
    kept, sealed; the Rasa slots only ever hold masked forms. Gone once registered."""

    __tablename__ = "registration_drafts"
    __table_args__ = (
        UniqueConstraint("channel", "sender_id", name="uq_registration_drafts_channel_sender"),
    )

    id = Column(BigId, primary_key=True)
    channel = Column(String(16), nullable=False)
    sender_id = Column(String(128), nullable=False)
    name_sealed = Column(LargeBinary)
    id_kind = Column(String(24))
    id_number_sealed = Column(LargeBinary)
    id_number_hash = Column(String(64))
    phone_sealed = Column(LargeBinary)
    phone_hash = Column(String(64))
    otp_sealed = Column(LargeBinary)  # the one-time-code challenge (a MAC of the code, never it)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at = Column(DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)


class OtpSend(Base):
    """One SMS code sent, by keyed hash of the phone or of the sender: the rate limits hold
    across WeChat accounts and workers."""

    __tablename__ = "otp_sends"
    __table_args__ = (Index("ix_otp_sends_key_sent", "key", "sent_at"),)

    id = Column(BigId, primary_key=True)
    key = Column(String(80), nullable=False)
    sent_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)


class WeChatKey(Base):
    """Short-lived shared state of the WeChat channel across workers: push dedup keys
    (a retry is processed once), the access token and its refresh lease.

    Rows past `expires_at` count as absent; they are purged as new keys arrive.
    """

    __tablename__ = "wechat_keys"
    __table_args__ = (Index("ix_wechat_keys_expires_at", "expires_at"),)

    key = Column(String(200), primary_key=True)
    value = Column(String(2000))
    expires_at = Column(DateTime(timezone=True), nullable=False)


class MediationCase(Base):
    """A dispute handed to the people's mediators: one per mediation handoff (its outbox key).

    `mode` is on_duty (a mediator on site by `sla_due_at`) or booking (pushed outside hours;
    the mediator books a time with the reporter by `booking_due_at`). Only ids, districts and
    times: the report itself stays sealed in `incidents`.
    """

    __tablename__ = "mediation_cases"
    __table_args__ = (Index("ix_mediation_cases_state", "state", "id"),)

    id = Column(BigId, primary_key=True)
    incident_id = Column(BigId, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False)
    handoff_key = Column(String(64), nullable=False, unique=True)
    mode = Column(String(8), nullable=False)  # on_duty | booking
    district = Column(String(32))
    # open | accepted | on_site | waiting (nobody took it, retried at retry_at) | exhausted
    # (nobody took it twice: a person must act) | cancelled
    state = Column(String(10), nullable=False)
    round = Column(Integer, nullable=False, default=1)  # pass over the roster, from 1
    retry_at = Column(DateTime(timezone=True))  # waiting: when the next round starts
    received_at = Column(DateTime(timezone=True), nullable=False)
    rota_at = Column(DateTime(timezone=True), nullable=False)  # whose duty day picks mediators
    sla_due_at = Column(DateTime(timezone=True))  # on_duty: on site by
    booking_due_at = Column(DateTime(timezone=True))  # booking: reporter contacted by
    escalated_at = Column(DateTime(timezone=True))
    escalation = Column(String(24))  # sla_breach | booking_overdue | no_mediator
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)


class MediationAssignment(Base):
    """One mediator asked to take a case; a mediator is asked at most once per round."""

    __tablename__ = "mediation_assignments"
    __table_args__ = (
        UniqueConstraint(
            "case_id", "round", "mediator_id", name="uq_mediation_assignments_case_round_mediator"
        ),
    )

    id = Column(BigId, primary_key=True)
    case_id = Column(
        BigId, ForeignKey("mediation_cases.id", ondelete="CASCADE"), nullable=False, index=True
    )
    mediator_id = Column(String(64), nullable=False)
    round = Column(Integer, nullable=False, default=1)  # the case's round it was offered in
    district = Column(String(32), nullable=False)  # whose duty list they came from
    reach = Column(String(10), nullable=False)  # district | neighbour | any
    # offered | accepted | declined | expired | on_site | cancelled
    state = Column(String(10), nullable=False)
    offered_at = Column(DateTime(timezone=True), nullable=False)
    answer_due_at = Column(DateTime(timezone=True), nullable=False)
    answered_at = Column(DateTime(timezone=True))
    on_site_at = Column(DateTime(timezone=True))
    sms_ref = Column(String(64))  # "sending" while a worker sends, then the gateway's id
    sms_sent_at = Column(DateTime(timezone=True))


class CitizenNotice(Base):
    """A status message for a citizen, waiting for their channel to show it (H5 poll/reply)."""

    __tablename__ = "citizen_notices"
    __table_args__ = (Index("ix_citizen_notices_sender", "channel", "sender_id", "id"),)

    id = Column(BigId, primary_key=True)
    channel = Column(String(16), nullable=False)
    sender_id = Column(String(128), nullable=False)
    text_sealed = Column(LargeBinary, nullable=False)  # may quote their case: sealed
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    shown_at = Column(DateTime(timezone=True))


class MiniProgramUser(Base):
    """A mini-program user, by openid (what `jscode2session` answers for `wx.login`'s code).

    WeChat's session_key would let anyone holding it forge the user's signed data: sealed,
    replaced at every login, never returned or logged.
    """

    __tablename__ = "miniprogram_users"

    openid = Column(String(128), primary_key=True)
    session_key_sealed = Column(LargeBinary, nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    last_login_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)


class MiniProgramSession(Base):
    """Our own session token for the mini-program's calls: only its SHA-256 is kept, so a
    copy of the database cannot be used to call the API as a citizen."""

    __tablename__ = "miniprogram_sessions"
    __table_args__ = (
        Index("ix_miniprogram_sessions_openid", "openid"),
        Index("ix_miniprogram_sessions_expires_at", "expires_at"),
    )

    token_hash = Column(String(64), primary_key=True)
    openid = Column(String(128), nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    expires_at = Column(DateTime(timezone=True), nullable=False)


class WeChatContact(Base):
    """When an openid last wrote to us, and how many customer-service messages went to it
    since: WeChat allows them for 48 hours after the citizen's message, five per message.
    In the database so that every worker counts against the same five."""

    __tablename__ = "wechat_contacts"

    openid = Column(String(128), primary_key=True)
    last_inbound_at = Column(DateTime(timezone=True), nullable=False)
    sent_since_inbound = Column(Integer, nullable=False, default=0)


class WeChatSubscription(Base):
    """One subscribe-message grant (the mini-program's wx.requestSubscribeMessage accepted):
    WeChat allows one message per grant, so a row is deleted when it is used."""

    __tablename__ = "wechat_subscriptions"
    __table_args__ = (Index("ix_wechat_subscriptions_openid", "openid", "template_id", "id"),)

    id = Column(BigId, primary_key=True)
    openid = Column(String(128), nullable=False)
    template_id = Column(String(128), nullable=False)
    granted_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
