"""Training the Rasa model only when its inputs changed, and finding the model to serve."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

MODEL_PREFIX = "alarmbot-"
# Everything that changes what `rasa train` produces. data/tests is evaluation-only.
TRAINING_INPUTS = ("config.yml", "domain.yml", "data", "nlu")


class ModelNotFound(RuntimeError):
    pass


def training_files(project_dir: Path) -> list[str]:
    data = project_dir / "data"
    return [str(path) for path in sorted(data.iterdir()) if path.name != "tests"]


def _input_files(project_dir: Path) -> list[Path]:
    files: list[Path] = []
    for name in TRAINING_INPUTS:
        path = project_dir / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file()
                and "__pycache__" not in p.parts
                and not p.relative_to(project_dir).as_posix().startswith("data/tests/")
            )
    return files


def project_fingerprint(project_dir: Path) -> str:
    """A short hash of the training inputs and the Rasa version."""
    import rasa

    digest = hashlib.sha256(f"rasa {rasa.__version__}\n".encode())
    for path in _input_files(project_dir):
        digest.update(path.relative_to(project_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def model_path_for(project_dir: Path, models_dir: Path) -> Path:
    return models_dir / f"{MODEL_PREFIX}{project_fingerprint(project_dir)}.tar.gz"


def train_if_needed(project_dir: Path, models_dir: Path, force: bool = False) -> tuple[Path, bool]:
    """Return (model path, whether it was trained now)."""
    target = model_path_for(project_dir, models_dir)
    if target.exists() and not force:
        return target, False
    from rasa.model_training import train

    models_dir.mkdir(parents=True, exist_ok=True)
    # Train into a private directory and rename: another process (a server starting, a test
    # run) must never open a half-written archive under the final name.
    with tempfile.TemporaryDirectory(prefix=".training-", dir=models_dir) as scratch:
        result = train(
            domain=str(project_dir / "domain.yml"),
            config=str(project_dir / "config.yml"),
            training_files=training_files(project_dir),
            output=scratch,
            fixed_model_name=target.name.removesuffix(".tar.gz"),
            force_training=force,
        )
        trained = Path(scratch) / target.name
        if result.code != 0 or not trained.exists():
            raise RuntimeError(f"rasa train failed (exit code {result.code})")
        os.replace(trained, target)
    return target, True


def find_model(project_dir: Path, models_dir: Path, explicit: Path | None) -> Path:
    """The explicit model, else the one matching the current data, else the newest one."""
    if explicit is not None:
        if not explicit.is_file():
            raise ModelNotFound(f"ALARMBOT_MODEL points to a missing file: {explicit}")
        return explicit
    current = model_path_for(project_dir, models_dir)
    if current.exists():
        return current
    candidates = sorted(models_dir.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise ModelNotFound(f"no trained model in {models_dir}: run `alarmbot train` first")
    logger.warning(
        "model for the current training data not found; serving the newest one, %s "
        "(run `alarmbot train` to update it)",
        candidates[-1].name,
    )
    return candidates[-1]
