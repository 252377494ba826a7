"""The Gradio webcam app of dp-pose-zoo: ``dp-pose demo``.

Two modules, in two layers:

- :mod:`dp_pose_zoo_app.core` -- what the app does, as plain functions and
  small classes on the torch-free runtime (zoo listing, card privacy block,
  tracking, drawing, anonymizing, the run pipeline). No gradio: it is tested
  without a browser.
- :mod:`dp_pose_zoo_app.ui` -- the Gradio page wired to ``core`` (the ``[app]``
  extra). ``launch()`` is what ``dp-pose demo`` calls.

Importing this package imports neither gradio nor torch.
"""
