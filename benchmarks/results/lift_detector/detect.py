"""MediaPipe Pose (legacy solution, model in the wheel) on the renders: hip/shoulder offsets."""

import json
from pathlib import Path

import mediapipe as mp
import numpy as np

d = np.load("/tmp/ll/mp/renders.npz")
images, kps = d["images"], d["kps"]
H15 = {
    "root": 0,
    "chest": 1,
    "neck": 2,
    "right_hip": 3,
    "right_knee": 4,
    "right_ankle": 5,
    "right_shoulder": 6,
    "right_elbow": 7,
    "right_wrist": 8,
    "left_hip": 9,
    "left_knee": 10,
    "left_ankle": 11,
    "left_shoulder": 12,
    "left_elbow": 13,
    "left_wrist": 14,
}
MP = {
    "left_shoulder": 11,
    "right_shoulder": 12,
    "left_elbow": 13,
    "right_elbow": 14,
    "left_wrist": 15,
    "right_wrist": 16,
    "left_hip": 23,
    "right_hip": 24,
    "left_knee": 25,
    "right_knee": 26,
    "left_ankle": 27,
    "right_ankle": 28,
}
found, rows = 0, []
with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
    for im, kp in zip(images, kps):
        res = pose.process(np.ascontiguousarray(im))
        if res.pose_landmarks is None:
            continue
        found += 1
        h, w = im.shape[:2]
        lm = np.array([[p.x * w, p.y * h, p.visibility] for p in res.pose_landmarks.landmark])
        rows.append({"det": lm.tolist(), "gt": kp.tolist()})
print("detected", found, "of", len(images))
Path("/tmp/ll/mp/detections.json").write_text(json.dumps(rows))
