"""The changes we make to Rasa's behaviour, kept small and in one place.

1. Rasa 3.6's `RemoteAction._validate_action_result` calls `jsonschema.validate`, which
   checks the schema itself again on every call: 25-40 ms per custom action. The same
   validation with a validator built once costs well under a millisecond. Results are
   identical: the validator class is the one `jsonschema.validate` would pick.
2. Rasa 3.6's `RasaModel.load` builds DIET's weights by *training* one step on an example
   (tracing Keras' whole train function, gradients included: 5-15 s of a 10-25 s start),
   then overwrites them with the saved ones. For inference we restore the checkpoint first
   and let the one prediction Rasa runs anyway create the variables, which TensorFlow fills
   from the checkpoint as they appear. Same weights, same predictions, no train function.
3. Rasa 3.6 runs its graphs (NLU, then the policies, for every message) through dask's
   generic scheduler and prunes the graph schema on every run: ~0.6 ms per NLU parse and
   ~0.3 ms per action prediction. The graphs are small fixed DAGs: we run the same nodes
   with the same inputs in a topological order computed once per target list.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import tensorflow as tf
from jsonschema import ValidationError
from jsonschema.validators import validator_for
from rasa.core.actions.action import RemoteAction
from rasa.engine.exceptions import GraphRunError
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.shared.constants import DOCS_BASE_URL
from rasa.utils.tensorflow.constants import LEARNING_RATE, RUN_EAGERLY
from rasa.utils.tensorflow.models import RasaModel

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


_STOCK_LOAD = RasaModel.load.__func__


def _load_for_inference(
    cls: type[RasaModel],
    model_file_name: str,
    model_data_example: Any,  # noqa: ANN401 - Rasa's RasaModelData
    predict_data_example: Any = None,  # noqa: ANN401
    finetune_mode: bool = False,
    *args: Any,  # noqa: ANN401
    **kwargs: Any,  # noqa: ANN401
) -> RasaModel:
    if finetune_mode or not predict_data_example:  # training goes on: Rasa's own way
        return _STOCK_LOAD(
            cls,
            model_file_name,
            model_data_example,
            predict_data_example,
            finetune_mode,
            *args,
            **kwargs,
        )
    model = cls(*args, **kwargs)
    config = kwargs.get("config", {})
    model.compile(
        optimizer=tf.keras.optimizers.Adam(config.get(LEARNING_RATE, 0.001)),
        run_eagerly=config.get(RUN_EAGERLY),
    )
    restored = model.load_weights(model_file_name)  # deferred: no variables exist yet
    model.run_inference(predict_data_example)  # creates them; each is restored on creation
    restored.expect_partial()  # the optimizer's slots in the checkpoint are for training
    return model


def install_fast_model_load() -> None:
    """Idempotent; for every DIET (or other RasaModel) loaded afterwards in this process."""
    RasaModel.load = classmethod(_load_for_inference)


def stock_model_load() -> None:
    """Rasa's original loader back, for the comparison test."""
    RasaModel.load = classmethod(_STOCK_LOAD)


Plan = list[tuple[str, tuple[str, ...]]]  # (node, the nodes and inputs it needs), in order
_STOCK_RUN = DaskGraphRunner.run
_PLANS: weakref.WeakKeyDictionary[DaskGraphRunner, dict[tuple[str, ...], Plan]] = (
    weakref.WeakKeyDictionary()
)


def execution_plan(runner: DaskGraphRunner, targets: Sequence[str]) -> Plan:
    """The nodes `targets` depend on, each after everything it needs (as dask would run)."""
    nodes = runner._graph_schema.nodes
    order: Plan = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in nodes:  # an input placeholder is not a node
            return
        seen.add(name)
        needs = tuple(nodes[name].needs.values())
        for needed in needs:
            visit(needed)
        order.append((name, needs))

    for target in targets:
        visit(target)
    return order


def _run_in_order(
    self: DaskGraphRunner,
    inputs: dict[str, Any] | None = None,
    targets: list[str] | None = None,
) -> dict[str, Any]:
    run_targets = tuple(targets if targets else self._graph_schema.target_names)
    plans = _PLANS.setdefault(self, {})
    plan = plans.get(run_targets)
    if plan is None:
        plan = plans[run_targets] = execution_plan(self, run_targets)
    # Like dask: an input arrives as (name, value); a name nothing provides, as itself.
    values: dict[str, Any] = {name: (name, value) for name, value in (inputs or {}).items()}
    try:
        for name, needs in plan:
            values[name] = self._instantiated_nodes[name](*(values.get(n, n) for n in needs))
    except RuntimeError as e:
        raise GraphRunError("Error running runner.") from e
    return dict(values[target] for target in run_targets)


def install_ordered_graph_runs() -> None:
    """Idempotent; for every Rasa graph run in this process (serving and training)."""
    DaskGraphRunner.run = _run_in_order


def stock_graph_runs() -> None:
    DaskGraphRunner.run = _STOCK_RUN


def install_all() -> None:
    install_fast_action_validation()
    install_fast_model_load()
    install_ordered_graph_runs()
