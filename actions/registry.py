"""The one list of our actions, for the in-process executor."""

from __future__ import annotations

from rasa_sdk.executor import ActionExecutor

from actions.greet import ActionGreet
from actions.incident_form import ValidateIncidentForm
from actions.my_incidents import ActionCancelIncident, ActionMyIncidents
from actions.registration_form import (
    ActionAskRegConfirm,
    ActionChangePhone,
    ActionDeleteMyData,
    ActionFinishRegistration,
    ActionMyInfo,
    ActionStartRegistration,
    ValidateRegistrationForm,
)
from actions.report_finish import ActionAskReportConfirm, ActionFinishReport
from actions.services import ActionServices, UsesServices
from actions.triage_report import ActionTriageReport, ActionUnclearMessage

ACTION_CLASSES = (
    ActionGreet,
    ActionTriageReport,
    ActionUnclearMessage,
    ValidateIncidentForm,
    ActionAskReportConfirm,
    ActionFinishReport,
    ActionMyIncidents,
    ActionCancelIncident,
    ValidateRegistrationForm,
    ActionAskRegConfirm,
    ActionFinishRegistration,
    ActionStartRegistration,
    ActionChangePhone,
    ActionMyInfo,
    ActionDeleteMyData,
)


def build_executor(services: ActionServices) -> ActionExecutor:
    executor = ActionExecutor()
    for action_class in ACTION_CLASSES:
        needs_services = issubclass(action_class, UsesServices)
        executor.register_action(action_class(services) if needs_services else action_class())
    return executor
