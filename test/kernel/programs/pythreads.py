# SPDX-License-Identifier: GPL-2.0-only
"""
pythreads.py: a multithreaded python3 program for the kernel backend.

Four threads hash chains of SHA-256 (the work of each is its own, so the
answer does not depend on how the GIL schedules them); the main thread
prints "ready" as soon as they run, waits for SIGUSR1 (blocked in every
thread, taken with sigwait) and lets them do a second half.  Checkpointed
while they hash, killed and restarted, it must print what an undisturbed
run prints.
"""
import hashlib
import signal
import sys
import threading

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
go = threading.Event()
digests = [''] * 4


def chain(h: bytes) -> bytes:
    for _ in range(ROUNDS):
        h = hashlib.sha256(h).digest()
    return h


def work(i: int) -> None:
    h = chain(b'thread %d' % i)
    go.wait()
    digests[i] = chain(h).hex()


signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
print('ready', flush=True)
signal.sigwait([signal.SIGUSR1])
go.set()
for t in threads:
    t.join()
for i, d in enumerate(digests):
    print(f'ok thread {i} {d}', flush=True)
