"""Loading operator-edited YAML files strictly: a key written twice is an error, not a silent overwrite.

PyYAML's `safe_load` keeps the last of two equal keys. In a holiday table or a mediator roster
that hides a typo (the same date entered twice with two names, one of them lost), so files that
operators edit by hand go through `load_yaml` instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~10x faster


class _StrictLoader(_SafeLoader):  # type: ignore[misc, valid-type]
    """SafeLoader that refuses duplicate mapping keys."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:  # unhashable key: construct_mapping below reports it
            continue
        if duplicate:
            line = key_node.start_mark.line + 1
            first = seen[key].start_mark.line + 1
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {line}, first on line {first})"
            )
        seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml_text(text: str) -> Any:
    """Parse YAML like `yaml.safe_load`, but a duplicate key raises `yaml.YAMLError`."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass


def load_yaml(path: Path | str) -> Any:
    """Read and parse a UTF-8 YAML file strictly (see `load_yaml_text`)."""
    return load_yaml_text(Path(path).read_text(encoding="utf-8"))
