"""``torchrun --nproc_per_node N -m dp_pose_zoo.training --recipe R.yaml ...``: one DP run over N processes."""

import sys

from ..cli import main

sys.exit(main(["train", *sys.argv[1:]]))
