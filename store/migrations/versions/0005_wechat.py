"""wechat: shared keys with a TTL (push dedup, access token, refresh lease)

Revision ID: 0005_wechat
Revises: 0004_registration
Create Date: 2026-11-23
"""

from alembic import op
import sqlalchemy as sa


revision = '0005_wechat'
down_revision = '0004_registration'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('wechat_keys',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('value', sa.String(length=2000), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_wechat_keys'))
    )
    with op.batch_alter_table('wechat_keys', schema=None) as batch_op:
        batch_op.create_index('ix_wechat_keys_expires_at', ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('wechat_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_wechat_keys_expires_at')

    op.drop_table('wechat_keys')
