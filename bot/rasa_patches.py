"""The one change we make to Rasa's behaviour, kept small and in one place.

Rasa 3.6's `RemoteAction._validate_action_result` calls `jsonschema.validate`, which checks
the schema itself again on every call: 25-40 ms per custom action. The same validation
with a validator built once costs well under a millisecond. Results are identical: the
validator class is the one `jsonschema.validate` would pick for this schema.
"""

from __future__ import annotations

from typing import Any

from jsonschema import ValidationError
from jsonschema.validators import validator_for
from rasa.core.actions.action import RemoteAction
from rasa.shared.constants import DOCS_BASE_URL

_SCHEMA = RemoteAction.action_response_format_spec()
_VALIDATOR_CLASS = validator_for(_SCHEMA)
_VALIDATOR_CLASS.check_schema(_SCHEMA)
_VALIDATOR = _VALIDATOR_CLASS(_SCHEMA)
_STOCK_VALIDATE = RemoteAction._validate_action_result


def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
    try:
        _VALIDATOR.validate(result)
        return True
    except ValidationError as e:
        e.message += (
            ". Failed to validate Action server response from API, make sure your response "
            "from the Action endpoint is valid. For more information about the format "
            f"visit {DOCS_BASE_URL}/custom-actions"
        )
        raise e


def install_fast_action_validation() -> None:
    """Idempotent; affects in-process and HTTP action servers alike."""
    RemoteAction._validate_action_result = _validate_action_result


def stock_action_validation() -> Any:
    """Rasa's original method, for the benchmark's baseline and for tests."""
    return _STOCK_VALIDATE
