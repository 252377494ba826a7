"""``dp-pose export MODEL``: a checkpoint to ONNX (and INT8 ONNX), or an ONNX model to INT8, with its card
and a parity report.

A checkpoint is traced with torch (the ``[export]`` extra); any other model
reference (the embedded default, a Hub release, an export folder, a model
file) is quantized from its fp32 ONNX with onnxruntime alone (the
``[quantize]`` extra). Both are imported only when the command runs, so
``dp-pose --help`` stays torch-free.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..runtime.metadata import DEFAULT_OPSET

EXPORT_ROOT = Path("runs") / "export"

EPILOG = """examples:
  dp-pose export runs/demo --format onnx                                  # runs/demo/onnx/model.onnx
  dp-pose export runs/demo --format onnx --int8 --calibration synthpose    # + model.int8.onnx
  dp-pose export runs/demo --int8 --calibration photos/ --boxes full --profile arm64 --out edge/
  dp-pose export runs/demo --int8 --eval-data synthpose:private-test:500 --force --json
  dp-pose export default --int8 --out edge/default      # an ONNX model: INT8 without torch ([quantize] extra)
  dp-pose export OWNER/REPO --int8 --profile arm64      # -> runs/export/REPO (model.onnx + model.int8.onnx)

MODEL is any model reference: 'default', OWNER/REPO[@rev], a checkpoint or export folder, or a
model file. A checkpoint (model.safetensors + config.json) is exported with torch; an ONNX-only
model can only be quantized (--int8), from its fp32 ONNX.

Profiles (export/profiles/*.yaml): x86-vnni (CPU flags show avx512_vnni or avx_vnni),
x86-avx2 (AVX2, no VNNI), arm64 (aarch64). INT8 calibration ranges ship inside the model and
are not covered by the DP guarantee: calibrate on public data (--calibration synthpose uses
SynthPose's public domain) or on images you may publish.
"""


def add_parser(subparsers) -> None:
    """Register ``export`` on the ``dp-pose`` subparsers."""
    p = subparsers.add_parser(
        "export", help="export a checkpoint to ONNX / INT8 ONNX, or quantize an ONNX model, with a parity report",
        description="Export a checkpoint to ONNX (dynamic batch) and optionally static INT8 (QDQ), or quantize an "
                    "ONNX model to INT8. Both carry the card's privacy block in their metadata; parity.json "
                    "reports ORT vs torch (a checkpoint) and INT8 vs fp32.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", metavar="MODEL",
                   help="a checkpoint directory (model.safetensors, config.json, README.md), or with --int8 any "
                        "model reference: 'default', OWNER/REPO[@rev], an export folder, a .onnx file")
    p.add_argument("--format", choices=("onnx",), default="onnx", help="export format (default: %(default)s)")
    p.add_argument("--out", metavar="DIR",
                   help="output directory (default: CHECKPOINT/onnx; for an ONNX model runs/export/<name>[-N])")
    p.add_argument("--force", action="store_true", help="replace an existing output directory")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help="ONNX opset, 17 or later; 20 and later export GELU as one node, which keeps it fused "
                        "between INT8 convolutions (default: %(default)s)")
    q = p.add_argument_group("INT8")
    q.add_argument("--int8", action="store_true", help="also write model.int8.onnx (static QDQ)")
    q.add_argument("--calibration", default="synthpose", metavar="synthpose|DIR|SPEC",
                   help="calibration crops: SynthPose's public domain, an image folder, or a data spec")
    q.add_argument("--boxes", choices=("full",), default="full",
                   help="person boxes in a DIR of images: 'full' = the whole image is one person")
    q.add_argument("--profile", default="x86-vnni", metavar="NAME|YAML",
                   help="edge-target quantization profile (default: %(default)s)")
    q.add_argument("--eval-data", default="synthpose:private-test:200",
                   help="held-out split for the INT8 PCKh change (default: %(default)s)")
    p.add_argument("--parity-data", default="synthpose", metavar="synthpose|DIR|SPEC",
                   help="crops for the ORT vs torch check (default: SynthPose private-val, 64 people)")
    p.add_argument("--parity-size", type=int, default=64, help="number of parity crops (default: %(default)s)")
    p.add_argument("--strict", action="store_true", help="fail (write nothing) when a parity bar is missed")
    p.add_argument("--json", action="store_true", help="print the parity report as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    """Export (or quantize), then print the parity report (also stored as parity.json)."""
    from ..runtime.reference import resolve_reference

    ref = resolve_reference(args.checkpoint)
    if ref.has_weights or not args.int8:
        from ..export import export_checkpoint

        result = export_checkpoint(
            ref.checkpoint(command="export to ONNX", needs="a checkpoint with weights (--int8 quantizes an ONNX "
                                                          "model)"),
            out=args.out, int8=args.int8, calibration=args.calibration, profile=args.profile,
            parity_data=args.parity_data, parity_size=args.parity_size, eval_data=args.eval_data, opset=args.opset,
            replace=args.force, strict=args.strict)
    else:
        from ..export.int8 import quantize_model
        from .infer import unique_run_dir

        out = Path(args.out) if args.out else unique_run_dir(EXPORT_ROOT / ref.name)
        result = quantize_model(ref, out, calibration=args.calibration, profile=args.profile,
                                parity_data=args.parity_data, parity_size=args.parity_size, eval_data=args.eval_data,
                                replace=args.force, strict=args.strict)
    print(json.dumps(result.report, indent=2) if args.json else format_report(result.report, result.out_dir))
    return 0


def format_report(report: dict, out_dir) -> str:
    """The parity report as a few human lines."""
    fp = report["fp32"]
    if "max_abs_logits" in fp:
        fp32_line = (f"fp32 model.onnx vs torch on {fp['crops']} crops ({fp['data']}): max |logit diff| "
                     f"{fp['max_abs_logits']:.3g}, max keypoint diff {fp['max_keypoint_px']:.3g} px "
                     f"[{'ok' if fp['pass'] else 'FAIL'}: bar {fp['bars']['max_keypoint_px']} px]")
    else:  # quantized from an ONNX model: no weights to compare with
        fp32_line = f"fp32 model.onnx: {report['model']}'s, verified against its card"
    lines = [f"exported to {out_dir}", fp32_line]
    if "int8" in report:
        q = report["int8"]
        vs, pckh = q["vs_fp32_ort"], q["pckh"]
        lines += [
            f"int8 model.int8.onnx ({q['profile']}, calibrated on {q['calibration']['crops']} crops of "
            f"{q['calibration']['data']})",
            f"  quantized: {_counts(q['quantized'])}; kept in float: {_counts(q['kept_float'])}",
            f"  vs fp32 ORT: max |logit diff| {vs['max_abs_logits']:.3g}, keypoints moved {vs['mean_keypoint_px']:.3g}"
            f" px on average (max {vs['max_keypoint_px']:.3g})",
            f"  PCKh@0.5 Mean on {pckh['data']} ({pckh['people']} people): fp32 {pckh['fp32']['Mean']:.2f}, "
            f"int8 {pckh['int8']['Mean']:.2f}, change {pckh['mean_change']:+.2f} "
            f"[{'ok' if pckh['pass'] else 'FAIL'}: max drop {pckh['bar_max_drop']}]",
        ]
    lines.append(f"report: {out_dir}/parity.json")
    return "\n".join(lines)


def _counts(counts: dict) -> str:
    return ", ".join(f"{k} x{v}" for k, v in counts.items()) or "none"
