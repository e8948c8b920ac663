"""mediation: cases and mediator assignments (SLA and booking clocks), citizen notices

Revision ID: 0006_mediation
Revises: 0005_wechat
Create Date: 2026-11-23
"""

from alembic import op
import sqlalchemy as sa


revision = '0006_mediation'
down_revision = '0005_wechat'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('mediation_cases',
    sa.Column('id', BigId, nullable=False),
    sa.Column('incident_id', BigId, nullable=False),
    sa.Column('handoff_key', sa.String(length=64), nullable=False),
    sa.Column('mode', sa.String(length=8), nullable=False),
    sa.Column('district', sa.String(length=32), nullable=True),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rota_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sla_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('booking_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('escalation', sa.String(length=24), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_mediation_cases_incident_id_incidents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mediation_cases')),
    sa.UniqueConstraint('handoff_key', name=op.f('uq_mediation_cases_handoff_key'))
    )
    with op.batch_alter_table('mediation_cases', schema=None) as batch_op:
        batch_op.create_index('ix_mediation_cases_state', ['state', 'id'], unique=False)

    op.create_table('mediation_assignments',
    sa.Column('id', BigId, nullable=False),
    sa.Column('case_id', BigId, nullable=False),
    sa.Column('mediator_id', sa.String(length=64), nullable=False),
    sa.Column('district', sa.String(length=32), nullable=False),
    sa.Column('reach', sa.String(length=10), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('offered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answer_due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('on_site_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sms_ref', sa.String(length=64), nullable=True),
    sa.Column('sms_sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['mediation_cases.id'], name=op.f('fk_mediation_assignments_case_id_mediation_cases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mediation_assignments')),
    sa.UniqueConstraint('case_id', 'mediator_id', name='uq_mediation_assignments_case_mediator')
    )
    with op.batch_alter_table('mediation_assignments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mediation_assignments_case_id'), ['case_id'], unique=False)

    op.create_table('citizen_notices',
    sa.Column('id', BigId, nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('sender_id', sa.String(length=128), nullable=False),
    sa.Column('text_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('shown_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_citizen_notices'))
    )
    with op.batch_alter_table('citizen_notices', schema=None) as batch_op:
        batch_op.create_index('ix_citizen_notices_sender', ['channel', 'sender_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('citizen_notices', schema=None) as batch_op:
        batch_op.drop_index('ix_citizen_notices_sender')
    op.drop_table('citizen_notices')
    with op.batch_alter_table('mediation_assignments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mediation_assignments_case_id'))
    op.drop_table('mediation_assignments')
    with op.batch_alter_table('mediation_cases', schema=None) as batch_op:
        batch_op.drop_index('ix_mediation_cases_state')
    op.drop_table('mediation_cases')
