"""dp-pose-zoo: differentially private 2D human-pose models, from training to the edge.

The base install is the torch-free runtime; ``dp_pose_zoo.training`` needs the
``[train]`` extra.
"""

__version__ = "0.1.0"
