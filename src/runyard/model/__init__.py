"""The pure domain of runyard: records, the status lifecycle, ids and validation (stdlib only)."""

from runyard.model.codec import (
    artifact_from_dict,
    artifact_to_dict,
    run_from_dict,
    run_to_dict,
    step_from_dict,
    step_to_dict,
)
from runyard.model.ids import id_time, looks_like_id, new_id
from runyard.model.records import (
    Artifact,
    Attempt,
    Event,
    Kind,
    LogLine,
    Metric,
    Owner,
    RunRecord,
    Stage,
    Step,
)
from runyard.model.status import (
    FINAL,
    TRANSITIONS,
    Status,
    can_transition,
    check_transition,
    status_path,
)
from runyard.model.tokens import TokenRecord

__all__ = [
    "FINAL",
    "TRANSITIONS",
    "Artifact",
    "Attempt",
    "Event",
    "Kind",
    "LogLine",
    "Metric",
    "Owner",
    "RunRecord",
    "Stage",
    "Status",
    "Step",
    "TokenRecord",
    "artifact_from_dict",
    "artifact_to_dict",
    "can_transition",
    "check_transition",
    "id_time",
    "looks_like_id",
    "new_id",
    "run_from_dict",
    "run_to_dict",
    "status_path",
    "step_from_dict",
    "step_to_dict",
]
