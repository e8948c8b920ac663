"""miniprogram: users and session tokens; WeChat contact windows and subscribe grants

Revision ID: 0007_miniprogram
Revises: 0006_mediation
Create Date: 2026-11-24
"""

from alembic import op
import sqlalchemy as sa


revision = '0007_miniprogram'
down_revision = '0006_mediation'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('miniprogram_users',
    sa.Column('openid', sa.String(length=128), nullable=False),
    sa.Column('session_key_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('openid', name=op.f('pk_miniprogram_users'))
    )
    op.create_table('miniprogram_sessions',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('openid', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_miniprogram_sessions'))
    )
    with op.batch_alter_table('miniprogram_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_miniprogram_sessions_openid', ['openid'], unique=False)
        batch_op.create_index('ix_miniprogram_sessions_expires_at', ['expires_at'], unique=False)

    op.create_table('wechat_contacts',
    sa.Column('openid', sa.String(length=128), nullable=False),
    sa.Column('last_inbound_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_since_inbound', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('openid', name=op.f('pk_wechat_contacts'))
    )
    op.create_table('wechat_subscriptions',
    sa.Column('id', BigId, nullable=False),
    sa.Column('openid', sa.String(length=128), nullable=False),
    sa.Column('template_id', sa.String(length=128), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wechat_subscriptions'))
    )
    with op.batch_alter_table('wechat_subscriptions', schema=None) as batch_op:
        batch_op.create_index(
            'ix_wechat_subscriptions_openid', ['openid', 'template_id', 'id'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('wechat_subscriptions', schema=None) as batch_op:
        batch_op.drop_index('ix_wechat_subscriptions_openid')
    op.drop_table('wechat_subscriptions')
    op.drop_table('wechat_contacts')
    with op.batch_alter_table('miniprogram_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_miniprogram_sessions_expires_at')
        batch_op.drop_index('ix_miniprogram_sessions_openid')
    op.drop_table('miniprogram_sessions')
    op.drop_table('miniprogram_users')
