"""dp-pose-zoo: differentially private 2D human-pose models, from training to the edge.

The base install is the torch-free runtime; ``dp_pose_zoo.training`` needs the
``[train]`` extra and ``dp_pose_zoo.export`` the ``[export]`` extra.

    from dp_pose_zoo import PoseEstimator
    est = PoseEstimator.from_pretrained("default")
    people = est(frame_bgr)
    print(est.card.privacy.epsilon)
"""

__version__ = "0.1.0"
__all__ = ["PoseEstimator", "__version__"]


def __getattr__(name: str):
    # Lazy, so `dp-pose --help` and the training commands do not load onnxruntime first.
    if name == "PoseEstimator":
        from .runtime.pose_estimator import PoseEstimator

        return PoseEstimator
    raise AttributeError(f"module 'dp_pose_zoo' has no attribute {name!r}")
