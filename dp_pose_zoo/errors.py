"""Every error the toolkit raises on purpose.

Each class also inherits the builtin that fits, so callers that catch
``KeyError`` or ``FileNotFoundError`` keep working (as huggingface_hub does).
The CLI turns any ``DPPoseZooError`` into one line on stderr and exit code 2.
"""

from __future__ import annotations


class DPPoseZooError(Exception):
    """Root of every error raised on purpose by dp_pose_zoo."""


class MissingExtraError(DPPoseZooError, ImportError):
    """An optional dependency is missing; the message carries the pip hint."""

    def __init__(self, package: str, extra: str):
        super().__init__(
            f"{package} is required for this; install it with: pip install \"dp-pose-zoo[{extra}]\""
        )
        self.package = package
        self.extra = extra


class DatasetError(DPPoseZooError, ValueError):
    """A data set spec, annotation file or image is malformed or missing."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A data set path does not exist."""


class RecipeError(DPPoseZooError, ValueError):
    """A training recipe or config is malformed."""


class CheckpointError(DPPoseZooError, ValueError):
    """A checkpoint directory is missing files or holds inconsistent ones."""


class CardError(DPPoseZooError, ValueError):
    """A model card is missing, malformed, or lacks a required privacy field."""


class PrivacyError(DPPoseZooError, ValueError):
    """A privacy parameter is invalid or a privacy rule would be broken."""


class UnknownModelError(DPPoseZooError, KeyError):
    """A model name is neither ``default``, an existing path, nor ``OWNER/REPO[@revision]`` on the Hub."""

    def __str__(self) -> str:  # KeyError quotes its message; the CLI prints this one as a sentence
        return str(self.args[0]) if self.args else ""


class ModelNotFoundError(UnknownModelError, FileNotFoundError):
    """A model reference names a path (a checkpoint or export folder, a model file) that is not there."""


class DefaultModelMissingError(DPPoseZooError, FileNotFoundError):
    """The embedded default model is not in this install (or not where DP_POSE_ZOO_DEFAULT_DIR points)."""


class IntegrityError(DPPoseZooError, ValueError):
    """A downloaded or local file does not match the sha256 its model card declares."""


class HubError(DPPoseZooError, OSError):
    """The Hub (or the local Hub cache, offline) could not give what was asked."""


class SourceError(DPPoseZooError, OSError):
    """A video, image, folder, glob or webcam cannot be opened or decoded."""


class SourceNotFoundError(SourceError, FileNotFoundError):
    """A source path (or glob) matches nothing."""


class UsageError(DPPoseZooError, ValueError):
    """A command-line argument out of its range (``--det-every 0``); the CLI's one line and exit 2."""


class DetectorError(DPPoseZooError, ValueError):
    """A person detector spec, ONNX detector or boxes file is malformed."""


class OutputError(DPPoseZooError, OSError):
    """An output folder or file cannot be written."""


class RecoveryError(DPPoseZooError, ValueError):
    """A key file or a recovery sidecar is missing, wrong, edited, truncated or does not match its output."""
