"""Colours shared by the Rerun recording and the PNG stills.

Objects are coloured by material (a hue family per material) and told apart within a
material by shade, so one colour says both "which object" and "what it is made of".
The tool is red; critic categories have their own colours.
"""

from __future__ import annotations

import colorsys

import numpy as np

from particles import KINEMATIC, ParticleScene

__all__ = ["MATERIAL_RGB", "CATEGORY_RGB", "TOOL_RGB", "TRUTH_RGB", "object_colors", "category_color", "tool_objects"]

#: Base colour per material, RGB 0..255.
MATERIAL_RGB: dict[str, tuple[int, int, int]] = {
    "rigid": (66, 135, 245),
    "elastic": (76, 187, 23),
    "plastic": (245, 158, 66),
    "granular": (214, 189, 120),
    "fluid": (40, 200, 220),
    "cloth": (170, 100, 220),
    "rope": (150, 100, 60),
    "static": (150, 150, 150),
}

#: Colour of the tool (kinematic, moving) particles.
TOOL_RGB: tuple[int, int, int] = (230, 40, 40)

#: Colour of the ground-truth overlay.
TRUTH_RGB: tuple[int, int, int] = (240, 240, 240)

#: Colour per critic category.
CATEGORY_RGB: dict[str, tuple[int, int, int]] = {
    "penetration": (255, 0, 200),
    "teleport": (255, 220, 0),
    "vanish": (0, 0, 0),
    "rigidity": (255, 120, 0),
    "floating": (0, 255, 255),
    "energy": (255, 40, 40),
    "jitter": (160, 255, 0),
}
_OTHER_CATEGORY = (255, 0, 255)


def category_color(category: str) -> tuple[int, int, int]:
    """RGB 0..255 of a critic category (magenta for names outside the closed list)."""
    return CATEGORY_RGB.get(category, _OTHER_CATEGORY)


def tool_objects(scene: ParticleScene) -> np.ndarray:
    """(K,) bool. Objects that are the tool: named ``"tool"``, or all-kinematic and not ``static``."""
    out = np.zeros(scene.num_objects, bool)
    for k in range(scene.num_objects):
        idx = scene.object_indices(k)
        if scene.object_name[k] == "tool":
            out[k] = True
        elif idx.size and scene.object_material[k] != "static" and np.all(scene.particle_type[idx] == KINEMATIC):
            out[k] = True
    return out


def object_colors(scene: ParticleScene) -> np.ndarray:
    """(K, 3) uint8 RGB. One colour per object: its material's hue, a different shade per object of that material."""
    tools = tool_objects(scene)
    out = np.zeros((scene.num_objects, 3), np.uint8)
    seen: dict[str, int] = {}
    for k, mat in enumerate(scene.object_material):
        if tools[k]:
            out[k] = TOOL_RGB
            continue
        j = seen.get(mat, 0)
        seen[mat] = j + 1
        h, l, s = colorsys.rgb_to_hls(*(c / 255.0 for c in MATERIAL_RGB[mat]))
        # Alternate lighter and darker shades: 0, +, -, ++, --, ... clipped to a visible range.
        step = ((j + 1) // 2) * (1 if j % 2 else -1) * 0.12
        l2 = float(np.clip(l + step, 0.2, 0.85))
        out[k] = np.round(np.array(colorsys.hls_to_rgb(h, l2, s)) * 255).astype(np.uint8)
    return out
