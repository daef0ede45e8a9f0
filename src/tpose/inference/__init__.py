"""Prediction: ``PosePredictor`` for images, folders and videos, skeleton drawing and result files."""

from .draw import draw_keypoints, draw_poses
from .images import as_rgb_image, whole_image_box
from .predict_job import run_predict
from .predictor import PersonPose, PosePredictor, person_score
from .results import coco_keypoint_results, image_record, video_record, write_json
from .sources import Detections, Frame, ImageFiles, VideoFrames, load_detections, open_source

__all__ = [
    "Detections",
    "Frame",
    "ImageFiles",
    "PersonPose",
    "PosePredictor",
    "VideoFrames",
    "as_rgb_image",
    "coco_keypoint_results",
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
