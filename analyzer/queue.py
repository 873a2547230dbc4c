"""The worker's local queue of read-ahead packets: freshness first, fair across cameras.

Per camera the packets wait in capture order and the newest is taken first (a live view
cares about now; older ones age out as stale). Cameras are served round-robin, so one
camera's burst cannot starve the others: after a camera is served it goes to the back.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

from bus.messages import Packet


@dataclass(order=True, slots=True)
class Held:
    wall: float  # capture time of the packet's last frame
    entry_id: str = field(compare=True)
    packet: Packet = field(compare=False)


class FairQueue:
    def __init__(self, newest_first: bool = True) -> None:
        self.newest_first = newest_first
        self._cams: dict[str, list[Held]] = {}
        self._turn: deque[str] = deque()

    def __len__(self) -> int:
        return sum(len(v) for v in self._cams.values())

    def __bool__(self) -> bool:
        return bool(self._turn)

    def push(self, entry_id: str, packet: Packet) -> None:
        items = self._cams.get(packet.camera)
        if items is None:
            items = self._cams[packet.camera] = []
            self._turn.append(packet.camera)
        bisect.insort(items, Held(packet.frames[-1].wall, entry_id, packet))

    def take(self, n: int) -> list[Held]:
        """Up to n packets: one per camera in turn (distinct cameras first), newest first."""
        out: list[Held] = []
        while self._turn and len(out) < n:
            cam = self._turn.popleft()
            items = self._cams[cam]
            out.append(items.pop() if self.newest_first else items.pop(0))
            if items:
                self._turn.append(cam)
            else:
                del self._cams[cam]
        return out

    def drop_older_than(self, wall: float) -> list[Held]:
        """Remove and return every packet captured before `wall`."""
        dropped: list[Held] = []
        for cam in list(self._turn):
            items = self._cams[cam]
            cut = 0
            while cut < len(items) and items[cut].wall < wall:
                cut += 1
            if cut:
                dropped += items[:cut]
                del items[:cut]
            if not items:
                del self._cams[cam]
                self._turn.remove(cam)
        return dropped

    def waiting_by_camera(self) -> dict[str, int]:
        return {c: len(v) for c, v in self._cams.items()}
