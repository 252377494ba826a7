"""INT8 from an fp32 ONNX model: what ``dp-pose export MODEL --int8`` runs without torch.

Static QDQ quantization needs only the fp32 graph and calibration crops
(:func:`.quantize.quantize_int8`, onnxruntime.quantization), so the embedded
default, a Hub release or an export folder can be quantized on a box with the
``[quantize]`` extra (onnx, onnxruntime) alone. A checkpoint's export
(:mod:`.onnx_export`) runs the same step after tracing.

Output directory (atomic: complete or absent)::

    model.onnx        the fp32 model it was quantized from (a copy: the folder is a whole release)
    model.int8.onnx   static QDQ INT8, the fp32 model's metadata plus how it was quantized
    parity.json       INT8 vs fp32 ORT, and the PCKh change on a held-out split
    README.md         the model card
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import onnxruntime

from ..errors import CheckpointError
from ..io import atomic_dir
from ..release import CARD, ONNX_FILES, PARITY, card_for, check_consistent, model_folder
from ..runtime.metadata import METADATA_PREFIX, encode_metadata
from ..runtime.onnx_model import OnnxModel
from . import parity
from .crops import SYNTHPOSE_CALIBRATION, SYNTHPOSE_PARITY, CropSet, load_crops
from .profiles import DEFAULT_PROFILE, QuantProfile, load_profile

log = logging.getLogger(__name__)

DEFAULT_EVAL_DATA = "synthpose:private-test:200"


@dataclass
class ExportResult:
    out_dir: Path
    fp32: Path
    int8: Path | None
    report: dict


def set_metadata(path: str | Path, props: dict[str, str]) -> None:
    """Replace our ``metadata_props`` of the model at ``path`` (others are kept) and check the model."""
    import onnx

    model = onnx.load(str(path))
    keep = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "dp-pose-zoo"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def int8_section(staging: Path, fp32: OnnxModel, *, metadata: Callable[[dict], dict[str, str]],
                 profile: QuantProfile, calibration: str, parity_crops: CropSet, eval_data: str) -> dict:
    """Write ``model.int8.onnx`` of ``fp32`` into ``staging``; the report's ``int8`` section.

    ``metadata(quantization)`` gives the INT8 model's metadata props (the fp32 model's privacy
    block, with how it was quantized).
    """
    from ..datasets import load_dataset
    from .crops import dataset_crops
    from .quantize import quantize_int8

    size = fp32.input_size
    calib = load_crops(calibration, size, limit=profile.calibration_size, synthpose=SYNTHPOSE_CALIBRATION)
    int8_path = staging / ONNX_FILES["int8"]
    summary = quantize_int8(fp32.path, int8_path, crops=calib.batch, profile=profile)
    quantization = {"profile": profile.to_dict(), "calibration": {"data": calib.source, "crops": len(calib)},
                    **summary}
    set_metadata(int8_path, metadata(quantization))
    int8 = OnnxModel(int8_path, require_metadata=True)
    held_out = dataset_crops(load_dataset(eval_data), size, source=eval_data)
    return {"file": ONNX_FILES["int8"], "profile": profile.name, "calibration": quantization["calibration"],
            "quantized": summary["quantized"], "kept_float": summary["kept_float"],
            "excluded_nodes": summary["excluded_nodes"],
            "vs_fp32_ort": parity.int8_parity(fp32, int8, parity_crops),
            "pckh": parity.pckh_change(fp32, int8, held_out)}


def quantize_model(ref, out: str | Path, *, calibration: str = "synthpose",
                   profile: str | QuantProfile = DEFAULT_PROFILE, parity_data: str = "synthpose",
                   parity_size: int = 64, eval_data: str = DEFAULT_EVAL_DATA, replace: bool = False,
                   strict: bool = False) -> ExportResult:
    """INT8 of a model reference's fp32 ONNX (a :class:`~dp_pose_zoo.runtime.reference.ModelRef`), into ``out``.

    The fp32 model is verified against its card first, as ``dp-pose infer`` verifies it; a model
    with no card is refused (the INT8 model must carry a privacy claim someone stands behind).
    """
    from .._deps import require

    require("onnx", "quantize")
    fp32_path, card = ref.onnx("fp32")
    fp32 = OnnxModel(fp32_path, require_metadata=True)
    check_consistent(fp32.metadata, card, source=str(fp32_path))
    quant = profile if isinstance(profile, QuantProfile) else load_profile(profile)
    out_dir = Path(out)
    if out_dir.exists() and not replace:
        raise CheckpointError(f"{out_dir} already exists; pass --force to replace it")
    parity_crops = load_crops(parity_data, fp32.input_size, limit=parity_size, synthpose=SYNTHPOSE_PARITY)
    ours = {k: v for k, v in fp32.session.get_modelmeta().custom_metadata_map.items()
            if k.startswith(METADATA_PREFIX)}

    def metadata(quantization: dict) -> dict[str, str]:
        return {**ours, **encode_metadata({"precision": "int8", "quantization": quantization})}

    report: dict = {"model": ref.source, "weights_sha256": card.weights_sha256, "input_size": list(fp32.input_size),
                    "onnxruntime": onnxruntime.__version__, "fp32": {"file": ONNX_FILES["fp32"]}}
    with atomic_dir(out_dir, replace=replace) as staging:
        shutil.copyfile(fp32_path, staging / ONNX_FILES["fp32"])
        report["int8"] = int8_section(staging, OnnxModel(staging / ONNX_FILES["fp32"], require_metadata=True),
                                      metadata=metadata, profile=quant, calibration=calibration,
                                      parity_crops=parity_crops, eval_data=eval_data)
        report["pass"] = bool(report["int8"]["pckh"]["pass"])
        if not report["pass"]:
            message = "parity bars missed for int8 (see the report)"
            if strict:
                raise CheckpointError(f"{message}; nothing written")
            log.warning(message)
        (staging / PARITY).write_text(json.dumps(report, indent=2) + "\n")
        shutil.copyfile(card_for(model_folder(fp32_path), fp32_path), staging / CARD)
    return ExportResult(out_dir, out_dir / ONNX_FILES["fp32"], out_dir / ONNX_FILES["int8"], report)
