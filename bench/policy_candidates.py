"""Candidate scripted policies tried while choosing the shipped set of ``dynamics.policies``
(issue 14: policies of clearly different quality), run on Newton only, e.g.

    PYTHONPATH=$PWD python bench/evaluate.py --backends '' --max-steps 180 \\
        --policies bench/policy_candidates.py:slow_push_060,bench/policy_candidates.py:offset_push_100

Each is a shipped policy with one knob changed: the closed-loop push's speed (``slow_push_SSS``:
SSS/1000 m/s; the episode's frame budget then cuts long pushes short), the open-loop push's
lateral offset (``offset_push_KKK``: KKK/100 object half-widths), or the yaw push's turning
(``yaw_push_G_C``: G/100 particle radii of offset per degree of yaw error, at most C/10
half-widths). The chosen ones are in ``dynamics.policies`` (``slow_push`` = ``slow_push_045``,
``wide_offset_push`` = ``offset_push_100``); the runs that chose them are in
``bench/data/evaluate/policy_design.txt``. Never collected as a test.
"""

from __future__ import annotations

import dynamics.policies as P


def slow_push_100(obs):
    return P._closed_loop_push(obs, speed=0.100)


def slow_push_080(obs):
    return P._closed_loop_push(obs, speed=0.080)


def slow_push_070(obs):
    return P._closed_loop_push(obs, speed=0.070)


def slow_push_060(obs):
    return P._closed_loop_push(obs, speed=0.060)


def slow_push_045(obs):
    return P._closed_loop_push(obs, speed=0.045)


def slow_push_030(obs):
    return P._closed_loop_push(obs, speed=0.030)


def offset_push_100(obs):
    return P._open_loop(obs, 1.0)


def offset_push_085(obs):
    return P._open_loop(obs, 0.85)


def yaw_push_15_9(obs):
    return P._closed_loop_push(obs, turn=True, turn_gain=0.15, turn_cap=0.9)


def yaw_push_30_9(obs):
    return P._closed_loop_push(obs, turn=True, turn_gain=0.30, turn_cap=0.9)
