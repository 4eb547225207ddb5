"""Align stage: warp a face onto the landmark template its model was trained with."""

from __future__ import annotations

import cv2
import numpy as np

from facesvc.engine.types import FloatArray, Image, Landmarks

#: The five-point template of SFace / ArcFace on a 112x112 crop (OpenCV's alignCrop uses it).
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


def similarity_transform(source: FloatArray, target: FloatArray) -> FloatArray:
    """Least-squares rotation + uniform scale + translation (Umeyama, 1991) taking
    `source` points onto `target` points; a 2x3 matrix for cv2.warpAffine."""
    src = source.astype(np.float64)
    dst = target.astype(np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rotation = u @ sign @ vt
    variance = src_c.var(axis=0).sum()
    scale = float(np.trace(np.diag(singular) @ sign) / variance) if variance > 0 else 1.0
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]]).astype(np.float32)


def warp_to_template(
    image: Image, landmarks: Landmarks, template: FloatArray, size: tuple[int, int]
) -> Image:
    """Crop the face so its landmarks land on `template`, output `size` (width, height).

    A large face shrunk straight to 112 px aliases (warpAffine samples, it does not
    average), so the region around the face is first reduced with INTER_AREA to about
    twice the output scale.
    """
    matrix = similarity_transform(landmarks.as_array(), template)
    scale = float(np.hypot(matrix[0, 0], matrix[0, 1]))
    if scale < 0.5:
        inverse = cv2.invertAffineTransform(matrix)
        corners = np.array(
            [[0, 0, 1], [size[0], 0, 1], [0, size[1], 1], [size[0], size[1], 1]], dtype=np.float32
        )
        mapped = corners @ inverse.T
        height, width = image.shape[:2]
        x0 = int(max(0, np.floor(mapped[:, 0].min()) - 2))
        y0 = int(max(0, np.floor(mapped[:, 1].min()) - 2))
        x1 = int(min(width, np.ceil(mapped[:, 0].max()) + 2))
        y1 = int(min(height, np.ceil(mapped[:, 1].max()) + 2))
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            shrink = 2.0 * scale
            region = image[y0:y1, x0:x1]
            reduced = cv2.resize(
                region,
                (max(1, round((x1 - x0) * shrink)), max(1, round((y1 - y0) * shrink))),
                interpolation=cv2.INTER_AREA,
            )
            points = (landmarks.as_array() - np.array([x0, y0], dtype=np.float32)) * shrink
            matrix = similarity_transform(points, template)
            image = reduced
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
