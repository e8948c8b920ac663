"""registration: drafts of a registration in progress, SMS code sends, citizen id kind

Revision ID: 0004_registration
Revises: 0003_outbox
Create Date: 2026-11-23
"""

from alembic import op
import sqlalchemy as sa


revision = '0004_registration'
down_revision = '0003_outbox'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('registration_drafts',
    sa.Column('id', BigId, nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('sender_id', sa.String(length=128), nullable=False),
    sa.Column('name_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('id_kind', sa.String(length=24), nullable=True),
    sa.Column('id_number_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('id_number_hash', sa.String(length=64), nullable=True),
    sa.Column('phone_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('phone_hash', sa.String(length=64), nullable=True),
    sa.Column('otp_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registration_drafts')),
    sa.UniqueConstraint('channel', 'sender_id', name='uq_registration_drafts_channel_sender')
    )
    op.create_table('otp_sends',
    sa.Column('id', BigId, nullable=False),
    sa.Column('key', sa.String(length=80), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_otp_sends'))
    )
    with op.batch_alter_table('otp_sends', schema=None) as batch_op:
        batch_op.create_index('ix_otp_sends_key_sent', ['key', 'sent_at'], unique=False)
    with op.batch_alter_table('citizens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('id_kind', sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('citizens', schema=None) as batch_op:
        batch_op.drop_column('erased_at')
        batch_op.drop_column('id_kind')
    with op.batch_alter_table('otp_sends', schema=None) as batch_op:
        batch_op.drop_index('ix_otp_sends_key_sent')
    op.drop_table('otp_sends')
    op.drop_table('registration_drafts')
