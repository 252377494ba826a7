"""The Gradio page of ``dp-pose demo``: webcam tab, upload tab, model switch and its privacy block.

Only wiring lives here; everything the handlers do is in :mod:`dp_pose_zoo_app.core`.
Needs the ``[app]`` extra (gradio); never torch.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path

# A privacy toolkit does not report usage to gradio's servers unless the user asks (GRADIO_ANALYTICS_ENABLED=True).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from dp_pose_zoo.errors import DPPoseZooError  # noqa: E402
from dp_pose_zoo.skeleton import DEFAULT_KPT_THR  # noqa: E402

from .core import (ANONYMIZE_CHOICES, PEOPLE_CHOICES, UPLOAD_KEEP_SECONDS, UPLOAD_MAX_FRAMES,  # noqa: E402
                   LiveSession, ModelLoader, choose, make_options, model_choices, privacy_markdown,
                   process_upload, prune_uploads)

log = logging.getLogger(__name__)

STREAM_EVERY = 0.2  # seconds between webcam frames sent to the server (at most 5 frames/s)
INTRO = ("## dp-pose-zoo: live pose with differentially private models\n"
         "Webcam: allow the camera, then press **Record**. Upload: a video (the first "
         f"{UPLOAD_MAX_FRAMES} frames) or an image gives back the annotated file and its keypoints as JSON and CSV.")


def build_app(loader: ModelLoader, selected: str, *, out_root: str | os.PathLike) -> gr.Blocks:
    """The page; ``loader`` holds the models offered, ``selected`` is the key shown first."""

    def on_model(key):
        try:
            block = privacy_markdown(loader.choice(key))
        except DPPoseZooError as e:
            raise gr.Error(str(e)) from None
        try:
            loader(key)  # open it now: a broken model says so at once, not on the next frame
        except DPPoseZooError as e:
            gr.Warning(f"this model cannot run: {e}")
            return f"**This model cannot run:** {e}\n\n{block}"
        return block

    def on_frame(frame, key, kpt_thr, smooth, anonymize, people, session):
        session = session if isinstance(session, LiveSession) else LiveSession()
        if frame is None:
            return gr.skip(), gr.skip(), session
        try:
            image, stats = session(frame, loader(key), model_key=key, people=people,
                                   options=make_options(kpt_thr=kpt_thr, smooth=smooth, anonymize=anonymize))
        except (DPPoseZooError, ValueError) as e:
            raise gr.Error(str(e)) from None
        return image, stats.markdown(), session

    def on_upload(path, key, kpt_thr, smooth, anonymize, people):
        prune_uploads(out_root)
        try:
            result = process_upload(path, loader(key), out_root=out_root, model_key=key, people=people,
                                    options=make_options(kpt_thr=kpt_thr, smooth=smooth, anonymize=anonymize))
        except (DPPoseZooError, ValueError) as e:
            raise gr.Error(str(e)) from None
        except Exception as e:  # a bug or a library failure: say so, log it, keep serving
            log.exception("upload of %s failed", path)
            raise gr.Error(f"{Path(path).name if path else 'the upload'} could not be processed "
                           f"({type(e).__name__}: {e})") from None
        return result.line, result.preview, [str(p) for p in result.files]

    # Gradio's copies of uploads and outputs go after an hour, as the app's own (prune_uploads).
    keep = int(UPLOAD_KEEP_SECONDS)
    with gr.Blocks(title="dp-pose demo", analytics_enabled=False, delete_cache=(600, keep)) as app:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Tabs():
                    with gr.Tab("Webcam", id="webcam"):
                        with gr.Row():
                            camera = gr.Image(label="Webcam", sources=["webcam"], streaming=True,
                                              webcam_options=gr.WebcamOptions(mirror=False), elem_id="camera")
                            # no label over the frame's corner, where the model's privacy label is drawn; PNG keeps
                            # thin skeleton lines in their colours (webp would smear them)
                            live = gr.Image(label="Keypoints", show_label=False, format="png", interactive=False,
                                            elem_id="live")
                        stats = gr.Markdown("frames/s: start the webcam, then press Record.", elem_id="stats")
                    with gr.Tab("Upload", id="upload"):
                        upload = gr.File(label="A video or an image", type="filepath", elem_id="upload-file")
                        run = gr.Button("Run", variant="primary", elem_id="upload-run")
                        summary = gr.Markdown(elem_id="upload-summary")
                        with gr.Row():
                            preview = gr.Image(label="Annotated", format="png", interactive=False,
                                               elem_id="upload-preview")
                            outputs = gr.File(label="Annotated file, keypoints.json, keypoints.csv",
                                              file_count="multiple", interactive=False, elem_id="upload-outputs")
            with gr.Column(scale=2):
                model = gr.Dropdown([(c.label, c.key) for c in loader.choices.values()], value=selected,
                                    label="Model (ε, δ, C from its card)", elem_id="model")
                kpt_thr = gr.Slider(0.0, 1.0, value=DEFAULT_KPT_THR, step=0.01, label="Keypoint threshold",
                                    elem_id="kpt-thr")
                smooth = gr.Checkbox(False, label="Smoothing (One-Euro filter)", elem_id="smooth")
                anonymize = gr.Radio(list(ANONYMIZE_CHOICES), value="off", label="Anonymize",
                                     info="blur or pixelate faces; skeleton keeps no pixel of the frame; avatar: posed mannequins",
                                     elem_id="anonymize")
                people = gr.Radio(list(PEOPLE_CHOICES), value="detect", label="People",
                                  info="whole frame: one person close to the camera", elem_id="people")
                privacy = gr.Markdown(privacy_markdown(loader.choice(selected)), elem_id="privacy")
        session = gr.State(None)
        switches = [model, kpt_thr, smooth, anonymize, people]
        camera.stream(on_frame, inputs=[camera, *switches, session], outputs=[live, stats, session],
                      stream_every=STREAM_EVERY, concurrency_limit=4, show_progress="hidden")
        model.change(on_model, inputs=model, outputs=privacy)
        run.click(on_upload, inputs=[upload, *switches], outputs=[summary, preview, outputs])
    return app


def launch(*, model: str = "default", host: str = "127.0.0.1", port: int | None = None, share: bool = False,
           threads: int | None = None, cache_dir: str | os.PathLike | None = None,
           workdir: str | os.PathLike | None = None) -> None:
    """Serve the app until Ctrl-C (or SIGTERM). The first model is opened (and checked) before the server starts.

    Upload outputs go to a fresh folder in ``workdir`` (default: the system's
    temporary folder), removed when the app stops.
    """
    choices, selected = choose(model_choices(cache_dir=cache_dir), model)
    loader = ModelLoader(choices, threads=threads)
    loader(selected)
    out_root = Path(tempfile.mkdtemp(prefix="dp-pose-demo-", dir=workdir))
    app = build_app(loader, selected, out_root=out_root)
    # A service manager's stop (SIGTERM) ends the app as Ctrl-C does, so the uploads' outputs are removed.
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if main_thread else None
    try:
        app.queue().launch(server_name=host, server_port=port, share=share, allowed_paths=[str(out_root)],
                           show_error=True)
    finally:
        app.close(verbose=False)
        shutil.rmtree(out_root, ignore_errors=True)
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
