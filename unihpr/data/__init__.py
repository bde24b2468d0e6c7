"""Datasets, joint layouts and camera geometry.

Loaders follow the sample-dict contract: ``pose3d`` (J, 3) root-relative
camera-frame metres, ``pose2d`` (J, 2) pixels, optional ``image`` (3, H, W) in
[0, 1], plus ``subject``, ``action`` and ``index``. Samples carry no person
box: the 2D box is always derived from the keypoints
([`bbox_from_keypoints`][unihpr.geometry.bbox_from_keypoints]).
Only numpy/torch are imported here; pybullet and Pillow are imported when used.

``__all__`` lists what a user imports: the datasets and their loaders, the
layouts and the mappings between them, the motion-capture readers and the
camera helpers the guides use. Building blocks (Euler angles, length units,
the humanoid's forward kinematics, the other layouts) stay importable from
their modules, e.g. ``unihpr.data.skeletons`` and ``unihpr.data.mocap_clip``.
"""

from unihpr.data._safe_pickle import UnsafePickleError
from unihpr.data.asf_amc import read_amc, read_asf
from unihpr.data.augment import PoseAugmentation, RandomFlip
from unihpr.data.bvh import read_bvh
from unihpr.data.cameras import project, world_to_camera
from unihpr.data.h36m import (
    H36M_TEST_SUBJECTS,
    H36M_TRAIN_SUBJECTS,
    Human36M,
    load_h36m_2d,
    load_h36m_3d,
)
from unihpr.data.h36m_cameras import CAMERA_IDS, h36m_camera
from unihpr.data.image_index import ImageIndexDataset, build_h36m_image_index, read_image_index
from unihpr.data.mapping import (
    RIG_MAPPINGS,
    joint_mapping,
    map_joints,
    map_visibility,
    resolve_rig_mapping,
)
from unihpr.data.mocap import HumanoidMocap, build_humanoid_mocap, load_humanoid_motion
from unihpr.data.mocap_clip import MocapClip
from unihpr.data.mocap_folder import MocapFolder, list_mocap_files, read_mocap_file
from unihpr.data.mpi_inf_3dhp import MPIInf3DHP, load_3dhp
from unihpr.data.pw3d import ThreeDPW, load_3dpw_sequence
from unihpr.data.skeletons import (
    COCO17,
    H36M17,
    HUMANOID15,
    MEDIAPIPE33,
    MPI_INF_3DHP17,
    Skeleton,
    flip_pose,
    get_skeleton,
    list_skeletons,
)
from unihpr.data.virtual_cameras import CameraDistribution, VirtualCameraDataset, WithPoses

__all__ = [
    "CAMERA_IDS",
    "COCO17",
    "H36M17",
    "H36M_TEST_SUBJECTS",
    "H36M_TRAIN_SUBJECTS",
    "HUMANOID15",
    "MEDIAPIPE33",
    "MPI_INF_3DHP17",
    "RIG_MAPPINGS",
    "CameraDistribution",
    "Human36M",
    "HumanoidMocap",
    "ImageIndexDataset",
    "MPIInf3DHP",
    "MocapClip",
    "MocapFolder",
    "PoseAugmentation",
    "RandomFlip",
    "Skeleton",
    "ThreeDPW",
    "UnsafePickleError",
    "VirtualCameraDataset",
    "WithPoses",
    "build_h36m_image_index",
    "build_humanoid_mocap",
    "flip_pose",
    "get_skeleton",
    "h36m_camera",
    "joint_mapping",
    "list_mocap_files",
    "list_skeletons",
    "load_3dhp",
    "load_3dpw_sequence",
    "load_h36m_2d",
    "load_h36m_3d",
    "load_humanoid_motion",
    "map_joints",
    "map_visibility",
    "project",
    "read_amc",
    "read_asf",
    "read_bvh",
    "read_image_index",
    "read_mocap_file",
    "resolve_rig_mapping",
    "world_to_camera",
]
