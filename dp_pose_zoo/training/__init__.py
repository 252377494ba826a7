"""Training: model, data, loss, trainer and evaluation (the ``[train]`` extra).

Importing this package needs torch and timm; the torch-free runtime never
imports it.
"""

from .._deps import require

require("torch", "train")
require("timm", "train")
