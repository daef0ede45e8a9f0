"""What the demo app offers and how much it accepts: one frozen object per idea, each default here only."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# the label of the choice that takes the file the user uploads (``.safetensors``, ``.pth`` or ``.onnx``)
OWN_WEIGHTS = "my own weights file (upload below)"
WEIGHTS_SUFFIXES = (".safetensors", ".pth", ".pt", ".onnx")


@dataclass(frozen=True)
class WeightsChoice:
    """One entry of the app's weights list: what ``tpose.PosePredictor`` is given for it.

    ``model`` / ``weights`` are passed as they are (None, None: the weights shipped with tpose); an int8
    ``.onnx`` file (``tpose export --int8``) is one more choice with ``model`` set to its path; ``precision``
    ``"int8"`` runs the int8 model shipped with the weights (its explorer still shows fp32 attention).
    """

    label: str
    model: str | None = None
    weights: str | None = None
    precision: str = "fp32"


SHIPPED = WeightsChoice("shipped: TransPose-R-A4, LSP+MPII, 128x96")
SHIPPED_INT8 = WeightsChoice("shipped, int8 (ONNX Runtime: the real-time path)", precision="int8")


@dataclass(frozen=True)
class DemoLimits:
    """What one request may bring; anything beyond gets a message in the page, and the app keeps serving."""

    max_files: int = 12  # photos (or videos) per request
    max_upload_mb: int = 200  # per file, enforced by the server before our code sees it
    max_image_pixels: int = 40_000_000  # a photo larger than this is refused from its header, before decoding
    max_video_seconds: float = 20.0  # longer videos are refused (the container's frame count / fps)
    max_video_pixels: int = 1920 * 1080  # frames larger than this are refused (the drawn video is re-encoded)


@dataclass(frozen=True)
class DemoOptions:
    """The whole app's settings (``tpose demo`` builds one from its flags)."""

    host: str = "127.0.0.1"
    port: int = 7860
    # "auto" (YOLOX-Nano: $TPOSE_DETECTOR, the cache, or a download), a YOLOX .onnx path, or None (whole image)
    detector: str | None = "auto"
    weights: tuple[WeightsChoice, ...] = (SHIPPED, SHIPPED_INT8)
    limits: DemoLimits = field(default_factory=DemoLimits)
    draw_threshold: float = 0.3  # keypoints scoring at least this are drawn
    attention_threshold: float = 0.00075  # the explorer hides attention below this (as `tpose explain`)
    concurrency: int = 1  # requests computed at once; the others wait in the queue, served in turn
    queue_size: int = 64  # requests waiting beyond this are refused with a message
    work_dir: Path | None = None  # where drawn files are written (default: a temporary folder)
    share: bool = False  # never on by default: a public link needs the network

    def __post_init__(self) -> None:
        if not self.weights:
            raise ValueError("the demo needs at least one weights choice")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")
