"""ProfiledBytes: LiveBytes' interface (reset_peak, peak_bytes) read from the allocator, for compiled steps.

A torch.compile'd (inductor) step allocates its buffers from generated code that calls the allocator
directly, so no TorchDispatchMode sees them; and dynamo does not compile under an active dispatch mode
at all (it runs the step eagerly). The profiler's allocation events come from the CPU allocator itself:
every buffer, whoever asked for it, with its address and size. Entry point: ProfiledBytes.
"""

from __future__ import annotations

from torch.profiler import ProfilerActivity, profile


def allocation_events(prof) -> list[tuple[int, int, int, int]]:
    """(time ns, sequence id, address, bytes) of every CPU allocation (+) and free (-), in order."""
    events, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        fields = node.extra_fields
        if type(fields).__name__ == "_ExtraFields_Allocation" and fields.device.type == "cpu":
            events.append((node.start_time_ns, fields.id, fields.ptr, fields.alloc_size))
        stack.extend(node.children)
    return sorted(events)


class ProfiledBytes:
    """Bytes allocated since entering and still alive, and the peak of that, from the profiler.

    The profiler runs in back-to-back sessions; each read (reset_peak, peak_bytes) closes the session,
    replays its allocations and frees in order, and opens the next. Frees of blocks allocated before
    entering are ignored, like LiveBytes ignores storages it did not see created: enter before
    building the model. On eager steps it agrees with LiveBytes (tests/test_memory_compiled.py)."""

    def __init__(self):
        self.live: dict[int, int] = {}  # address -> bytes
        self.now_bytes = 0
        self._peak_bytes = 0
        self._prof = None

    def _open(self) -> None:
        self._prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
        self._prof.__enter__()

    def _close(self) -> None:
        prof, self._prof = self._prof, None
        prof.__exit__(None, None, None)
        for _, _, ptr, nbytes in allocation_events(prof):
            if nbytes > 0:
                self.live[ptr] = nbytes
                self.now_bytes += nbytes
                self._peak_bytes = max(self._peak_bytes, self.now_bytes)
            elif ptr in self.live:
                self.now_bytes -= self.live.pop(ptr)

    def _replay(self) -> None:
        self._close()
        self._open()

    def __enter__(self):
        self._open()
        return self

    def __exit__(self, *exc):
        self._close()
        return False

    def reset_peak(self) -> None:
        self._replay()
        self._peak_bytes = self.now_bytes

    @property
    def peak_bytes(self) -> int:
        self._replay()
        return self._peak_bytes
