"""Reading the YAML files users write (training recipes, export profiles).

Torch-free: the export profiles are read by code that must run without torch.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .errors import RecipeError


def read_yaml_mapping(path: Path, what: str) -> dict:
    """The mapping in the YAML file ``path``; a one-line RecipeError naming it as ``what`` otherwise."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise RecipeError(f"{what} {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{what} {path} must be a YAML mapping")
    return data
