"""Our touch points with Rasa internals: in-process actions, the validator fix and the
model loader."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import ActionExecutionRejection, RemoteAction
from rasa.core.agent import Agent
from rasa.core.channels.channel import UserMessage
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import RasaException
from rasa_sdk import Action
from rasa_sdk import ActionExecutionRejection as SdkRejection
from rasa_sdk.executor import ActionExecutor

from bot.dialogue import InProcessActions
from bot.rasa_patches import (
    execution_plan,
    install_direct_predict,
    install_fast_action_validation,
    install_fast_model_load,
    install_ordered_graph_runs,
    predicts_directly,
    stock_action_validation,
    stock_graph_runs,
    stock_model_load,
    stock_predict,
    use_tf_threads,
)

GOOD = {
    "events": [
        {"event": "slot", "name": "x", "value": 1, "timestamp": None},
        {"event": "active_loop", "name": None},
        {"event": "followup", "name": "action_listen"},
    ],
    "responses": [{"text": "您好", "buttons": [{"title": "好", "payload": "/affirm"}]}],
}
BAD = [
    {"events": "not a list"},
    {"events": [{"event": "no_such_event"}]},
    {"responses": "nope"},
]


@pytest.mark.parametrize("result", [GOOD, {}, {"events": []}])
def test_fast_validation_accepts_what_stock_accepts(result: dict[str, Any]) -> None:
    install_fast_action_validation()
    action = RemoteAction("action_x", None)
    assert stock_action_validation()(action, result) is True
    assert action._validate_action_result(result) is True


@pytest.mark.parametrize("result", BAD)
def test_fast_validation_rejects_what_stock_rejects(result: dict[str, Any]) -> None:
    install_fast_action_validation()
    action = RemoteAction("action_x", None)
    with pytest.raises(ValidationError) as stock:
        stock_action_validation()(action, result)
    with pytest.raises(ValidationError) as fast:
        action._validate_action_result(result)
    assert fast.value.message == stock.value.message


class _Echo(Action):
    def name(self) -> str:
        return "action_echo"

    async def run(self, dispatcher, tracker, domain):  # noqa: ANN001, ANN201
        dispatcher.utter_message(text=f"sender {tracker.sender_id}")
        return [{"event": "slot", "name": "seen", "value": True}]


class _Refuse(Action):
    def name(self) -> str:
        return "action_refuse"

    async def run(self, dispatcher, tracker, domain):  # noqa: ANN001, ANN201
        raise SdkRejection("action_refuse", "not now")


def _call(action: str) -> dict[str, Any]:
    return {
        "next_action": action,
        "sender_id": "web:u1",
        "tracker": {"sender_id": "web:u1", "slots": {}, "events": [], "latest_message": {}},
        "domain": {},
        "version": "3.6.21",
    }


async def test_in_process_endpoint_runs_the_action() -> None:
    executor = ActionExecutor()
    executor.register_action(_Echo())
    result = await InProcessActions(executor).request(json=_call("action_echo"), method="post")
    assert result["responses"][0]["text"] == "sender web:u1"
    assert result["events"][0]["name"] == "seen"


async def test_in_process_endpoint_maps_errors_like_an_action_server() -> None:
    executor = ActionExecutor()
    executor.register_action(_Refuse())
    endpoint = InProcessActions(executor)
    with pytest.raises(ActionExecutionRejection):
        await endpoint.request(json=_call("action_refuse"))
    with pytest.raises(RasaException, match="action_missing"):
        await endpoint.request(json=_call("action_missing"))


def test_every_custom_action_in_the_domain_is_registered() -> None:
    import yaml

    from actions.registry import ACTION_CLASSES
    from bot.settings import PROJECT_DIR

    domain = yaml.safe_load((PROJECT_DIR / "domain.yml").read_text())
    custom = {n for n in domain.get("actions", []) if n.startswith(("action_", "validate_"))}
    assert custom == {cls().name() for cls in ACTION_CLASSES}


READ_BY_BOTH = [
    "你好",
    "我的电动车在徐汇区漕溪北路88号楼下被偷了",
    "楼上装修太吵了，周末一大早就开始电钻",
    "有人拿刀在砍人！！",
    "someone is following me on 地铁2号线",
    "邻居家的狗天天叫，沟通了也没用",
    "救命",
    "我" * 300,
]


async def test_fast_model_load_predicts_exactly_what_stock_load_does(model_path) -> None:  # noqa: ANN001
    """Restoring DIET's weights without Rasa's one-step training gives the same model."""

    async def readings() -> list[list[tuple[str, float]]]:
        agent = Agent.load(str(model_path))
        parsed = [await agent.parse_message(text) for text in READ_BY_BOTH]
        return [[(i["name"], i["confidence"]) for i in p["intent_ranking"]] for p in parsed]

    try:
        stock_model_load()
        stock = await readings()
    finally:
        install_fast_model_load()
    fast = await readings()
    assert [[name for name, _ in r] for r in fast] == [[name for name, _ in r] for r in stock]
    for fast_ranking, stock_ranking in zip(fast, stock, strict=True):
        assert [c for _, c in fast_ranking] == pytest.approx(
            [c for _, c in stock_ranking], abs=1e-6
        )


def graph_components(agent: Agent) -> list[Any]:
    """The components (DIET, RulePolicy, …) of the agent's loaded graph."""
    return [node._component for node in agent.processor.graph_runner._instantiated_nodes.values()]


def diet_models(agent: Agent) -> list[Any]:
    return [component.model for component in graph_components(agent) if hasattr(component, "model")]


async def test_direct_predict_reads_exactly_what_tf_function_reads(model_path) -> None:  # noqa: ANN001
    """DIET's graph without re-masking, called directly, gives tf.function's outputs, for any length."""
    install_direct_predict()
    agent = Agent.load(str(model_path))
    assert diet_models(agent) and all(predicts_directly(model) for model in diet_models(agent))

    async def readings() -> list[dict]:
        return [await agent.parse_message(text) for text in [*READ_BY_BOTH, "我" * 1000]]

    direct = await readings()
    try:
        stock_predict()
        stock = await readings()
    finally:
        install_direct_predict()
    assert direct == stock


def test_tf_threads_are_set_once_or_the_mismatch_is_logged(caplog) -> None:  # noqa: ANN001
    import tensorflow as tf

    with pytest.raises(ValueError, match="at least 1"):
        use_tf_threads(0)
    # TensorFlow takes a thread count only before its first operation: in this test
    # process that has usually happened already, and asking for another count is logged.
    current = tf.config.threading.get_intra_op_parallelism_threads()
    wanted = 3 if current != 3 else 2
    use_tf_threads(wanted)
    took = tf.config.threading.get_intra_op_parallelism_threads() == wanted
    assert took or "asked for too late" in caplog.text


async def test_ordered_graph_runs_give_what_dask_gives(model_path) -> None:  # noqa: ANN001
    """NLU parses and action predictions are the same with our runner and with dask's."""
    agent = Agent.load(str(model_path))
    processor = agent.processor

    def run_both() -> list:
        # A fresh tracker each time: the first prediction on a tracker takes its follow-up
        # action (action_listen) and clears it.
        tracker = DialogueStateTracker.from_events("graph-1", [], agent.domain.slots)
        parsed = [
            processor._parse_message_with_graph(UserMessage(text), tracker)
            for text in [*READ_BY_BOTH, '/inform{"answer": "yes"}']
        ]
        prediction = processor._predict_next_with_tracker(tracker)
        return [parsed, prediction.max_confidence_index, prediction.probabilities]

    try:
        stock_graph_runs()
        by_dask = run_both()
    finally:
        install_ordered_graph_runs()
    in_order = run_both()
    assert in_order[0] == by_dask[0]
    assert in_order[1] == by_dask[1]
    assert in_order[2] == pytest.approx(by_dask[2])
    # Each node once, after what it needs.
    plan = execution_plan(processor.graph_runner, [processor.model_metadata.nlu_target])
    names = [name for name, _ in plan]
    assert len(names) == len(set(names))
    for position, (_, needs) in enumerate(plan):
        assert all(n not in names[position:] for n in needs)


def test_bounded_rule_matching_finds_the_keys_stock_finds(model_path) -> None:  # noqa: ANN001
    """At every turn of every conversation test and rule, with text or intent featurised."""
    from rasa.core.policies.rule_policy import RULES, RULES_FOR_LOOP_UNHAPPY_PATH, RulePolicy
    from rasa.shared.core.generator import TrainingDataGenerator
    from rasa.shared.importers.importer import TrainingDataImporter

    from bot.rasa_patches import possible_keys_within_longest_rule, stock_possible_keys
    from bot.settings import PROJECT_DIR

    agent = Agent.load(str(model_path))
    (policy,) = [c for c in graph_components(agent) if isinstance(c, RulePolicy)]
    stories = TrainingDataImporter.load_from_dict(
        domain_path=str(PROJECT_DIR / "domain.yml"),
        training_data_paths=[str(PROJECT_DIR / "data" / "tests"), str(PROJECT_DIR / "data")],
    ).get_stories()
    trackers = TrainingDataGenerator(stories, agent.domain, augmentation_factor=0).generate()
    compared = 0
    for tracker in trackers:
        for prior, _ in tracker.generate_all_prior_trackers():
            for use_text in (False, True):
                states = policy._prediction_states(
                    prior, agent.domain, use_text, rule_only_data=policy._get_rule_only_data()
                )
                for lookup in (policy.lookup[RULES], policy.lookup[RULES_FOR_LOOP_UNHAPPY_PATH]):
                    bounded = possible_keys_within_longest_rule(policy, lookup, states)
                    assert bounded == stock_possible_keys(policy, lookup, states)
                    compared += 1
    assert len(trackers) > 50 and compared > 1000


def test_fast_slot_copies_are_what_copy_copy_makes() -> None:
    """For every slot type in our domain, with a value set or not."""
    import copy

    from rasa.shared.core.domain import Domain
    from rasa.shared.core.slots import Slot

    from bot.rasa_patches import shallow_copy_slot
    from bot.settings import PROJECT_DIR

    slots = Domain.load(str(PROJECT_DIR / "domain.yml")).slots
    assert len({type(slot) for slot in slots}) > 2
    installed = Slot.__dict__.get("__copy__")
    if installed is not None:
        del Slot.__copy__  # copy.copy's own way, as Rasa ships
    try:
        for slot in slots:
            for value in (None, slot.value):
                slot.value = value
                stock, fast = copy.copy(slot), shallow_copy_slot(slot)
                assert type(fast) is type(stock) and fast is not slot
                assert vars(fast) == vars(stock)
    finally:
        if installed is not None:
            Slot.__copy__ = installed
