"""Prediction: ``PosePredictor`` for images, folders, videos and cameras, person detection and tracking,
skeleton drawing and result files."""

from .detector import PersonBoxes, PersonDetector, YoloxDetector, default_detector
from .draw import draw_keypoints, draw_poses
from .images import as_rgb_image, whole_image_box
from .options import DetectorOptions, OutputOptions, PredictOptions, PredictorOptions, TrackingOptions
from .predict_job import run_predict
from .predictor import PersonPose, PosePredictor, person_score
from .results import coco_keypoint_results, image_record, video_record, write_json
from .smoothing import KeypointSmoother, OneEuroFilter
from .sources import Detections, Frame, ImageFiles, VideoFrames, load_detections, open_source
from .tracking import Tracker
from .video import PoseTracker

__all__ = [
    "Detections",
    "DetectorOptions",
    "Frame",
    "ImageFiles",
    "KeypointSmoother",
    "OneEuroFilter",
    "OutputOptions",
    "PersonBoxes",
    "PersonDetector",
    "PersonPose",
    "PosePredictor",
    "PoseTracker",
    "PredictOptions",
    "PredictorOptions",
    "Tracker",
    "TrackingOptions",
    "VideoFrames",
    "YoloxDetector",
    "as_rgb_image",
    "coco_keypoint_results",
    "default_detector",
    "draw_keypoints",
    "draw_poses",
    "image_record",
    "load_detections",
    "open_source",
    "person_score",
    "run_predict",
    "video_record",
    "whole_image_box",
    "write_json",
]
