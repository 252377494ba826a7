"""A checkpoint to ``model.onnx`` (and ``model.int8.onnx``), with its card and a parity report.

The graph is exported by tracing (``dynamo=False``): timm's TinyViT caches its
attention biases per device in eval mode, and tracing takes the uncached path,
so the biases become plain constants. Either way :mod:`.parity` checks the
exported graph against torch on real crops before the directory appears.

Output directory (atomic: complete or absent)::

    model.onnx        fp32, dynamic batch, our metadata (privacy block, input size, ...)
    model.int8.onnx   with --int8: static QDQ INT8, the same metadata plus how it was quantized
    parity.json       the parity report printed by ``dp-pose export``
    README.md         the checkpoint's model card
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path

import onnxruntime
import torch

from ..card import parse_card
from ..errors import CardError, CheckpointError
from ..io import atomic_dir
from ..release import CARD, ONNX_DIR, ONNX_FILES, PARITY
from ..runtime.metadata import DEFAULT_OPSET, FORMAT_VERSION, encode_metadata
from ..runtime.onnx_model import OnnxModel
from ..skeleton import JOINT_NAMES
from . import parity
from .crops import SYNTHPOSE_PARITY, load_crops
from .int8 import DEFAULT_EVAL_DATA, ExportResult, int8_section, set_metadata  # noqa: F401 (importable here)
from .profiles import DEFAULT_PROFILE, QuantProfile, load_profile

log = logging.getLogger(__name__)

FP32_FILE = ONNX_FILES["fp32"]
INT8_FILE = ONNX_FILES["int8"]
REPORT_FILE = PARITY
CARD_FILE = CARD


def export_onnx(model: torch.nn.Module, path: str | Path, *, opset: int = DEFAULT_OPSET,
                metadata: dict[str, str] | None = None) -> Path:
    """Trace ``model`` (eval mode) to ONNX with a dynamic batch axis and set ``metadata`` props."""
    if opset < 17:
        raise CheckpointError(f"opset {opset} is too old: LayerNormalization needs opset 17 or later")
    model.eval()
    h, w = model.config.input_size
    example = torch.zeros(2, 3, h, w)
    axes = {"input": {0: "batch"}, "simcc_x": {0: "batch"}, "simcc_y": {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings on timm's shape asserts; the parity check is the judge
        torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=opset,
                          input_names=["input"], output_names=["simcc_x", "simcc_y"], dynamic_axes=axes,
                          do_constant_folding=True)
    if metadata:
        set_metadata(path, metadata)
    return Path(path)


def model_metadata(config: dict, card_text: str, *, precision: str, quantization: dict | None = None) -> dict:
    """Our metadata for a checkpoint's export (see :mod:`dp_pose_zoo.runtime.metadata`)."""
    try:
        privacy = parse_card(card_text).data.to_dict()["privacy"]
    except CardError as e:
        raise CardError(f"cannot export: {e}") from None
    model = config["model"]
    return encode_metadata({
        "format_version": FORMAT_VERSION,
        "privacy": privacy,
        "input_size": list(model["input_size"]),
        "split_ratio": float(model["split_ratio"]),
        "joint_names": list(JOINT_NAMES),
        "weights_sha256": config["weights_sha256"],
        "model_name": config.get("recipe", {}).get("name"),
        "backbone": model.get("backbone"),
        "precision": precision,
        "quantization": quantization,
        "card": card_text,
    })


def export_checkpoint(checkpoint: str | Path, *, out: str | Path | None = None, int8: bool = False,
                      calibration: str = "synthpose", profile: str | QuantProfile = DEFAULT_PROFILE,
                      parity_data: str = "synthpose", parity_size: int = 64,
                      eval_data: str = DEFAULT_EVAL_DATA, opset: int = DEFAULT_OPSET,
                      replace: bool = False, strict: bool = False) -> ExportResult:
    """Export a checkpoint directory; see the module docstring for what is written.

    ``calibration`` and ``parity_data`` are ``synthpose``, a data spec or an
    image folder (each image one person). Calibration ranges ship inside the
    INT8 model unprotected, so ``synthpose`` calibrates on SynthPose's *public*
    domain. With ``strict`` a parity bar missed is an error and nothing is written.
    """
    from ..training.checkpoint import load_model

    ckpt = Path(checkpoint)
    if not ckpt.is_dir():
        raise CheckpointError(f"checkpoint directory not found: {ckpt}")
    model, config = load_model(ckpt)
    card_path = ckpt / CARD_FILE
    if not card_path.is_file():
        raise CardError(f"{ckpt} has no model card ({CARD_FILE}): an export must carry its privacy block")
    card_text = card_path.read_text()
    quant = profile if isinstance(profile, QuantProfile) else (load_profile(profile) if int8 else None)
    out_dir = Path(out) if out is not None else ckpt / ONNX_DIR
    if out_dir.exists() and not replace:
        raise CheckpointError(f"{out_dir} already exists; pass --force to replace it")
    size = model.config.input_size
    parity_crops = load_crops(parity_data, size, limit=parity_size, synthpose=SYNTHPOSE_PARITY)

    report: dict = {"checkpoint": str(ckpt), "weights_sha256": config["weights_sha256"], "opset": opset,
                    "input_size": list(size), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}
    with atomic_dir(out_dir, replace=replace) as staging:
        fp32_path = export_onnx(model, staging / FP32_FILE, opset=opset,
                                metadata=model_metadata(config, card_text, precision="fp32"))
        fp32 = OnnxModel(fp32_path, require_metadata=True)
        report["fp32"] = {"file": FP32_FILE, **parity.fp32_parity(model, fp32, parity_crops)}
        if int8:
            report["int8"] = int8_section(
                staging, fp32, profile=quant, calibration=calibration, parity_crops=parity_crops,
                eval_data=eval_data,
                metadata=lambda q: model_metadata(config, card_text, precision="int8", quantization=q))
        failed = [k for k in ("fp32", "int8") if k in report and not _passed(report[k])]
        report["pass"] = not failed
        if failed:
            message = f"parity bars missed for {', '.join(failed)} (see the report)"
            if strict:
                raise CheckpointError(f"{message}; nothing written")
            log.warning(message)
        (staging / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
        shutil.copyfile(card_path, staging / CARD_FILE)
    return ExportResult(out_dir, out_dir / FP32_FILE, out_dir / INT8_FILE if int8 else None, report)


def _passed(section: dict) -> bool:
    return bool(section["pckh"]["pass"]) if "pckh" in section else bool(section["pass"])
