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
4. Every DIET prediction goes through `tf.function.__call__`, which re-canonicalises and
   re-casts its inputs against the signature and looks the graph up again (~1 ms per parse,
   a fifth of it). Once the first prediction has run, we trace the prediction graph once
   more and call that concrete graph directly with the batch converted to the signature's
   dtypes. `RandomlyConnectedDense` re-applies its fixed sparsity mask on every call
   (`kernel.assign(kernel * mask)`, 13 layers); the first call leaves the kernels masked,
   so our graph is traced without that step: 3.2 -> 2.3 ms per DIET call, the same
   readings. (Freezing the weights into constants gained nothing more and cost 550 MB.)
5. TensorFlow's thread pools are sized for big batches; serving one message at a time is
   faster with one thread each (`use_tf_threads`).
6. RulePolicy matches its rules against the conversation's states from the latest one
   back to the very first, although a rule of n states is decided by the last n: past its
   length every rule counts as applicable. We stop at the longest rule (or when no rule
   is left). Same keys, ~6% of a turn's CPU less once a conversation has a few turns.
7. `Domain.is_empty()`, asked on every parsed message, builds an empty Domain and
   serialises both domains to compare them; the empty one's dict is built once instead.
8. Every tracker copy (several per turn: Rasa replays the conversation to featurise it)
   copies each of the domain's 34 slots with `copy.copy`, which goes through
   `__reduce_ex__`. `Slot.__copy__` does the same shallow copy directly (66 -> 31 µs per
   tracker copy).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import tensorflow as tf
from jsonschema import ValidationError
from jsonschema.validators import validator_for
from keras.utils import tf_utils
from rasa.core.actions.action import RemoteAction
from rasa.core.policies.rule_policy import RulePolicy
from rasa.engine.exceptions import GraphRunError
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.shared.constants import DIAGNOSTIC_DATA, DOCS_BASE_URL
from rasa.shared.core.domain import Domain, State
from rasa.shared.core.slots import Slot
from rasa.utils.tensorflow.constants import LEARNING_RATE, RUN_EAGERLY
from rasa.utils.tensorflow.layers import RandomlyConnectedDense
from rasa.utils.tensorflow.models import RasaModel

logger = logging.getLogger(__name__)

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


_STOCK_PREDICT = RasaModel._rasa_predict


class _DirectPredict:
    """DIET's prediction graph without the per-call kernel masking, called directly."""

    def __init__(self, model: RasaModel, batch_in: Sequence[Any]) -> None:
        with _kernels_already_masked(model):
            traced = tf.function(
                model.predict_step, input_signature=model._dynamic_signature(batch_in)
            ).get_concrete_function()
        self.function = traced
        self.dtypes = [spec.dtype for spec in tf.nest.flatten(traced.structured_input_signature)]

    def __call__(self, batch_in: Sequence[Any]) -> Any:  # noqa: ANN401 - nested tensors
        tensors = [
            tf.constant(x, dtype=dtype) for x, dtype in zip(batch_in, self.dtypes, strict=True)
        ]
        return self.function._call_flat(tensors, self.function.captured_inputs)


@contextmanager
def _kernels_already_masked(model: RasaModel) -> Iterator[None]:
    """Trace `RandomlyConnectedDense` layers without re-masking their (masked) kernels."""
    layers = [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, RandomlyConnectedDense) and layer.density < 1.0
    ]
    densities = [layer.density for layer in layers]
    for layer in layers:
        layer.density = 1.0
    try:
        yield
    finally:
        for layer, density in zip(layers, densities, strict=True):
            layer.density = density


_DIRECT: weakref.WeakKeyDictionary[RasaModel, _DirectPredict] = weakref.WeakKeyDictionary()
_NOT_DIRECT: weakref.WeakSet[RasaModel] = weakref.WeakSet()


def _rasa_predict_direct(self: RasaModel, batch_in: Sequence[Any]) -> dict[str, Any]:
    predict = _DIRECT.get(self)
    if predict is None or self._run_eagerly:
        outputs = _STOCK_PREDICT(self, batch_in)  # the first call masks the kernels
        if self._tf_predict_step is not None and not self._run_eagerly:
            _trace_direct(self, batch_in)
        return outputs
    self._training = False
    outputs = tf_utils.sync_to_numpy_or_python_type(predict(batch_in))
    if DIAGNOSTIC_DATA in outputs:
        outputs[DIAGNOSTIC_DATA] = self._empty_lists_to_none_in_dict(outputs[DIAGNOSTIC_DATA])
    return outputs


def _trace_direct(model: RasaModel, batch_in: Sequence[Any]) -> None:
    """Once per model. A failure must not reach Rasa: DIETClassifier.load turns any
    ValueError into an untrained classifier that answers nlu_fallback to everything."""
    if model in _NOT_DIRECT:
        return
    try:
        _DIRECT[model] = _DirectPredict(model, batch_in)
    except Exception:  # noqa: BLE001 - tf.function's own path still predicts correctly
        _NOT_DIRECT.add(model)
        logger.warning(
            "could not trace DIET's direct graph; predicting through tf.function", exc_info=True
        )


def predicts_directly(model: RasaModel) -> bool:
    """Whether `model` predicts through its direct graph (for tests and diagnostics)."""
    return model in _DIRECT


def install_direct_predict() -> None:
    """Idempotent; for every RasaModel (DIET, TED) predicting in this process."""
    RasaModel._rasa_predict = _rasa_predict_direct


def stock_predict() -> None:
    RasaModel._rasa_predict = _STOCK_PREDICT


def use_tf_threads(threads: int) -> None:
    """TensorFlow's thread pools for serving: one thread each by default.

    DIET's per-message graph is small; handing its ops to a pool costs more than it saves
    (a parse took 5.2 ms with the default pools, 4.5 ms with one thread, on 2 cores), and
    a busy server's concurrency comes from its messages and workers, not from one
    message's ops. TensorFlow takes this only before its first operation; later calls
    (several models in one test process) keep what the first one set.
    """
    if threads < 1:
        raise ValueError("TensorFlow thread count must be at least 1")
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        current = tf.config.threading.get_intra_op_parallelism_threads()
        if current != threads:
            logger.warning(
                "TensorFlow already runs with %s threads per pool; %s asked for too late",
                current or "default",
                threads,
            )


_STOCK_POSSIBLE_KEYS = RulePolicy._get_possible_keys


def possible_keys_within_longest_rule(
    self: RulePolicy, lookup: dict[str, str], states: list[State]
) -> set[str]:
    """RulePolicy._get_possible_keys, stopping at the longest rule: the same keys."""
    possible_keys = set(lookup)
    horizon = _longest_rule(self, lookup)
    for i, state in enumerate(reversed(states)):
        if i >= horizon or not possible_keys:
            break
        possible_keys = {key for key in possible_keys if self._is_rule_applicable(key, i, state)}
    return possible_keys


def _longest_rule(policy: RulePolicy, lookup: dict[str, str]) -> int:
    """States in the longest rule of `lookup` (a policy's lookups are fixed once trained)."""
    horizons = policy.__dict__.setdefault("_alarmbot_horizons", {})
    cached = horizons.get(id(lookup))
    if cached is None or cached[0] is not lookup or cached[1] != len(lookup):
        length = max((len(policy._rule_key_to_state(key)) for key in lookup), default=0)
        cached = horizons[id(lookup)] = (lookup, len(lookup), length)
    return cached[2]


def install_bounded_rule_matching() -> None:
    """Idempotent; for every RulePolicy predicting in this process."""
    RulePolicy._get_possible_keys = possible_keys_within_longest_rule


def stock_possible_keys(
    policy: RulePolicy, lookup: dict[str, str], states: list[State]
) -> set[str]:
    """Rasa's own matching, for the comparison test."""
    return _STOCK_POSSIBLE_KEYS(policy, lookup, states)


_EMPTY_DOMAIN = Domain.empty().as_dict()


def _is_empty(self: Domain) -> bool:
    return self.as_dict() == _EMPTY_DOMAIN


def install_cheap_domain_checks() -> None:
    """Idempotent."""
    Domain.is_empty = _is_empty


def shallow_copy_slot(slot: Slot) -> Slot:
    """What `copy.copy` makes of a Slot (a new object sharing the attribute values)."""
    copied = object.__new__(type(slot))
    copied.__dict__.update(slot.__dict__)
    return copied


def install_fast_slot_copies() -> None:
    """Idempotent; for every Slot (none defines __slots__, __reduce__ or __getstate__)."""
    Slot.__copy__ = shallow_copy_slot


def install_all(tf_threads: int = 1) -> None:
    """Everything above, for a process that serves (not one that trains)."""
    use_tf_threads(tf_threads)
    install_fast_action_validation()
    install_fast_model_load()
    install_ordered_graph_runs()
    install_direct_predict()
    install_bounded_rule_matching()
    install_cheap_domain_checks()
    install_fast_slot_copies()
