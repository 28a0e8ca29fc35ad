"""Requests within a translation API's limits: at most `max_segments` texts and `max_chars`
code points each (Cloud Translation v3: 1,024 segments, under 30,000 code points, about 5,000
recommended), and a characters-per-minute budget (6,000,000 per project).

>>> [list(b) for b in batches(["aa", "bbb", "c", "dddd"], max_segments=2, max_chars=5)]
[[0, 1], [2, 3]]
>>> [list(b) for b in batches(["aaaaaa", "b"], max_segments=10, max_chars=5)]
[[0], [1]]
>>> limiter = CharacterRate(10, clock=iter([0.0, 20.0]).__next__, sleep=print)
>>> limiter.wait(6); limiter.wait(6)  # the second waits until the first is a minute old
40.0
"""

import collections
import time


def batches(texts, max_segments: int, max_chars: int):
    """Lists of indices into `texts`, in order: each list at most max_segments texts and
    max_chars code points, except that a text longer than max_chars goes alone (the caller
    decides whether the API takes it)."""
    batch, size = [], 0
    for index, text in enumerate(texts):
        length = len(text)
        if batch and (len(batch) >= max_segments or size + length > max_chars):
            yield batch
            batch, size = [], 0
        batch.append(index)
        size += length
    if batch:
        yield batch


class CharacterRate:
    """Keeps the characters sent in any 60 s window under `per_minute` (a sliding window);
    `wait(n)` sleeps until n more characters may go."""

    WINDOW = 60.0

    def __init__(self, per_minute: int, clock=time.monotonic, sleep=time.sleep):
        self.per_minute = int(per_minute)
        self.clock, self.sleep = clock, sleep
        self.sent = collections.deque()  # (time, characters)
        self.total = 0

    def wait(self, characters: int) -> None:
        if self.per_minute <= 0:
            return
        now = self.clock()
        self._forget(now)
        if self.sent and self.total + characters > self.per_minute:
            pause = self.sent[0][0] + self.WINDOW - now
            if pause > 0:
                self.sleep(pause)
            now += max(pause, 0.0)
            self._forget(now)
        self.sent.append((now, characters))
        self.total += characters

    def _forget(self, now: float) -> None:
        while self.sent and self.sent[0][0] <= now - self.WINDOW:
            self.total -= self.sent.popleft()[1]
