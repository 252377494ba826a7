"""``torchrun --nproc_per_node N -m dp_pose_zoo.training --recipe R.yaml ...``: one DP run over N processes.

An entry point like ``dp_pose_zoo/__main__.py`` (``dp-pose train --nproc N`` relaunches
``python -m dp_pose_zoo train ...`` itself): the train command's arguments, after the command word.
"""

import sys

from ..cli import main

sys.exit(main(["train", *sys.argv[1:]]))
