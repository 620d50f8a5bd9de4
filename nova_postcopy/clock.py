# SPDX-License-Identifier: Apache-2.0
"""Time as the monitor sees it, injected so simulations run at CPU speed."""

import time


class WallClock:
    def now(self):
        return time.monotonic()

    def sleep(self, seconds):
        time.sleep(seconds)


class VirtualClock:
    """A clock that moves only when slept on: an hour simulates in a blink."""

    def __init__(self, start=0.0):
        self._now = float(start)

    def now(self):
        return self._now

    def sleep(self, seconds):
        self._now += max(seconds, 0.0)
