"""The video pipeline: source -> boxes/tracks -> pose -> smoothing -> drawing, anonymizing -> sinks.

Sits above :mod:`dp_pose_zoo.runtime` (the pose model) and below the CLI and the
app; nothing is imported here, so ``import dp_pose_zoo.video.sources`` loads only what it needs.
"""
