"""YOLO11n-pose per video frame, run in an interpreter of its own (ultralytics is AGPL: never a tpose
dependency). ``bench_video.py --yolo-python VENV/bin/python --yolo-weights yolo11n-pose.pt`` runs this file
as a subprocess on the same frames as tpose and reads the JSON it prints last.

    VENV/bin/python benchmarks/yolo_pose_timing.py --weights yolo11n-pose.pt --video vtest.avi --frames 100

Per frame: read (OpenCV) + ``model.predict`` at 640 px (letterbox, network, NMS, keypoints), 2 torch
threads; the first 3 frames are warm-up. It imports nothing from tpose.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True)
    p.add_argument("--video", required=True)
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--imgsz", type=int, default=640)
    args = p.parse_args()
    import cv2
    import torch
    from ultralytics import YOLO

    model = YOLO(args.weights)
    torch.set_num_threads(args.threads)  # after the import: ultralytics sets its own count (cores - 1)
    capture = cv2.VideoCapture(args.video)
    times, persons = [], []
    for _ in range(args.frames):
        t0 = time.perf_counter()
        ok, frame = capture.read()
        if not ok:
            break
        result = model.predict(frame, imgsz=args.imgsz, verbose=False, device="cpu")[0]
        torch.set_num_threads(args.threads)  # ultralytics' predictor may set it again on its first call
        times.append(time.perf_counter() - t0)
        persons.append(0 if result.boxes is None else len(result.boxes))
    capture.release()
    warm, warm_persons = times[3:], persons[3:]
    print(json.dumps({"median_ms": 1000 * statistics.median(warm), "frames": len(times),
                      "persons_per_frame": statistics.mean(warm_persons), "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                      "imgsz": args.imgsz}))


if __name__ == "__main__":
    main()
