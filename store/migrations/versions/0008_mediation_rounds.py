"""mediation rounds: a case nobody took is retried from the top of the roster at the next
working day's opening (state waiting, retry_at), then escalated; a mediator may be asked
once per round

Revision ID: 0008_mediation_rounds
Revises: 0007_miniprogram
Create Date: 2026-11-24
"""

from alembic import op
import sqlalchemy as sa


revision = '0008_mediation_rounds'
down_revision = '0007_miniprogram'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('mediation_cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('round', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('retry_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('mediation_assignments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('round', sa.Integer(), nullable=False, server_default='1'))
        batch_op.drop_constraint('uq_mediation_assignments_case_mediator', type_='unique')
        batch_op.create_unique_constraint(
            'uq_mediation_assignments_case_round_mediator', ['case_id', 'round', 'mediator_id']
        )


def downgrade() -> None:
    # Later rounds ask mediators again: keep each mediator's first assignment of a case.
    op.execute(
        "DELETE FROM mediation_assignments WHERE round > 1 AND EXISTS ("
        "SELECT 1 FROM mediation_assignments AS first WHERE first.case_id = "
        "mediation_assignments.case_id AND first.mediator_id = mediation_assignments.mediator_id"
        " AND first.round < mediation_assignments.round)"
    )
    op.execute("UPDATE mediation_cases SET state = 'exhausted' WHERE state = 'waiting'")
    with op.batch_alter_table('mediation_assignments', schema=None) as batch_op:
        batch_op.drop_constraint('uq_mediation_assignments_case_round_mediator', type_='unique')
        batch_op.create_unique_constraint(
            'uq_mediation_assignments_case_mediator', ['case_id', 'mediator_id']
        )
        batch_op.drop_column('round')
    with op.batch_alter_table('mediation_cases', schema=None) as batch_op:
        batch_op.drop_column('retry_at')
        batch_op.drop_column('round')
