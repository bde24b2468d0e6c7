"""Datasets, joint layouts and camera geometry.

Loaders follow the sample-dict contract: ``pose3d`` (J, 3) root-relative
camera-frame metres, ``pose2d`` (J, 2) pixels, optional ``image`` (3, H, W) in
[0, 1], plus ``subject``, ``action`` and ``index``. Samples carry no person
box: the 2D box is always derived from the keypoints
([`bbox_from_keypoints`][unihpr.geometry.bbox_from_keypoints]).
Only numpy/torch are imported here; pybullet and Pillow are imported when used.
"""

from unihpr.data._safe_pickle import UnsafePickleError
from unihpr.data.asf_amc import AsfBone, AsfSkeleton, read_amc, read_asf
from unihpr.data.augment import PoseAugmentation, RandomFlip
from unihpr.data.bvh import read_bvh
from unihpr.data.cameras import camera_to_world, project, quaternion_to_matrix, world_to_camera
from unihpr.data.h36m import (
    H36M_TEST_SUBJECTS,
    H36M_TRAIN_SUBJECTS,
    Human36M,
    load_h36m_2d,
    load_h36m_3d,
    normalize_action,
    prepare_h36m,
)
from unihpr.data.h36m_cameras import CAMERA_IDS, H36MCamera, h36m_camera
from unihpr.data.image_index import ImageIndexDataset, build_h36m_image_index, read_image_index
from unihpr.data.mapping import (
    RIG_MAPPINGS,
    joint_mapping,
    map_joints,
    map_visibility,
    mappable_layouts,
    resolve_rig_mapping,
)
from unihpr.data.mocap import (
    DEFAULT_TEST_CLIPS,
    HumanoidMocap,
    build_humanoid_mocap,
    humanoid_forward_kinematics,
    list_mocap_clips,
    load_humanoid_motion,
    load_mocap_clip,
)
from unihpr.data.mocap_clip import LENGTH_UNITS, MocapClip, euler_to_matrix, resample_motion
from unihpr.data.mocap_folder import MocapFolder, list_mocap_files, read_mocap_file
from unihpr.data.mpi_inf_3dhp import MPIInf3DHP, load_3dhp
from unihpr.data.pw3d import ThreeDPW, load_3dpw_sequence
from unihpr.data.skeletons import (
    COCO17,
    H36M17,
    H36M32,
    HUMANOID15,
    MEDIAPIPE33,
    MPI_INF_3DHP17,
    OPENPOSE18,
    SMPL24,
    SMPL24_TO_H36M17,
    Skeleton,
    flip_pose,
    get_skeleton,
    list_skeletons,
)
from unihpr.data.virtual_cameras import (
    CameraDistribution,
    VirtualCameraDataset,
    WithPoses,
    project_to_camera,
    sample_cameras,
)

__all__ = [
    "CAMERA_IDS",
    "COCO17",
    "DEFAULT_TEST_CLIPS",
    "H36M17",
    "H36M32",
    "H36M_TEST_SUBJECTS",
    "H36M_TRAIN_SUBJECTS",
    "HUMANOID15",
    "LENGTH_UNITS",
    "MEDIAPIPE33",
    "MPI_INF_3DHP17",
    "OPENPOSE18",
    "RIG_MAPPINGS",
    "SMPL24",
    "SMPL24_TO_H36M17",
    "AsfBone",
    "AsfSkeleton",
    "CameraDistribution",
    "H36MCamera",
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
    "camera_to_world",
    "euler_to_matrix",
    "flip_pose",
    "get_skeleton",
    "h36m_camera",
    "humanoid_forward_kinematics",
    "joint_mapping",
    "list_mocap_clips",
    "list_mocap_files",
    "list_skeletons",
    "load_3dhp",
    "load_3dpw_sequence",
    "load_h36m_2d",
    "load_h36m_3d",
    "load_humanoid_motion",
    "load_mocap_clip",
    "map_joints",
    "map_visibility",
    "mappable_layouts",
    "normalize_action",
    "prepare_h36m",
    "project",
    "project_to_camera",
    "quaternion_to_matrix",
    "read_amc",
    "read_asf",
    "read_bvh",
    "read_image_index",
    "read_mocap_file",
    "resample_motion",
    "resolve_rig_mapping",
    "sample_cameras",
    "world_to_camera",
]
