#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Benchmark: the hand-over's own overhead, and how fast reads answer during a swap.

On machine (b) with the latency model on, a full PrepareVM and ReleaseVM take at least
the time the kernel holds their writes (amdgpu unbind 600 ms, bind 1500 ms, ...). The
fake kernel reports how long it held each write; their sum, measured in the same run, is
the baseline. Targets: wall time at most the baseline plus 50 ms; Diagnose and property
reads during a swap with a median under 5 ms. Also counts the driver-code writes of each
swap against the minimum the kernel needs (RX 6800 + HDMI audio, two BARs resized: prepare
2 overrides + 2 unbinds + 2 resizes + 2 probes; release adds a pinned and a restored
override per function). The simulator's own share is measured too: each driver write
crosses FUSE to the Python fake kernel, so the time one write of nothing costs here (the
harness clearing an override that is already clear) times the writes of a swap is taken
off; what is left is gpuswapd's own overhead (a child process per write, its reads, bus
and journal), still under the umockdev preload that every file call of it passes through.
Prints figures; asserts no times.
"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'sim'))
from simharness import Manager, case, main  # noqa: E402

GPU, AUDIO = '0000:03:00.0', '0000:03:00.1'
CONFIG = {'vms': {'win11': {'devices': [GPU, AUDIO], 'bars': {GPU: {'0': '8G', '2': '8M'}}}}}
ROUNDS = 3
MINIMUM_WRITES = {'prepare': 8, 'release': 10}


def held_ms(sim, since):
    return sum(write['held_ms'] for write in sim.kernel_state()['writes'][since:])


def writes_since(sim, since):
    return len(sim.kernel_state()['writes'][since:])


def timed(sim, method):
    manager = Manager(sim.bus)
    since = len(sim.kernel_state()['writes'])
    started = time.monotonic()
    steps = getattr(manager, method)('win11')
    wall = (time.monotonic() - started) * 1000
    return wall, held_ms(sim, since), len(steps), writes_since(sim, since)


def simulator_write_ms(sim, rounds=50):
    """The median cost of one sysfs write in this simulator when the kernel model holds it
    for no time: the audio function's override, already clear, cleared again."""
    samples = []
    for _ in range(rounds):
        started = time.monotonic()
        sim.sysfs_write(f'bus/pci/devices/{AUDIO}/driver_override', '\n')
        samples.append((time.monotonic() - started) * 1000)
    return statistics.median(samples)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@case(config=CONFIG, latency=True)
def hand_over_latency(sim):
    per_write = simulator_write_ms(sim)
    print(f'simulator: one sysfs write the kernel model does not hold costs {per_write:.2f} ms (median of 50)',
          flush=True)
    for _ in range(ROUNDS):
        for method in ('prepare', 'release'):
            wall, baseline, steps, writes = timed(sim, method)
            print(f'{method:8s} {steps:2d} steps: wall {wall:7.1f} ms, kernel held the writes {baseline:7.1f} ms, '
                  f'overhead {wall - baseline:5.1f} ms (target <= 50), ratio {wall / baseline:.3f}; '
                  f'{writes} driver-code writes (minimum {MINIMUM_WRITES[method]}); '
                  f'without the simulator\'s {writes} write round trips {wall - baseline - writes * per_write:5.1f} ms',
                  flush=True)

    manager = Manager(sim.bus)
    samples = {'Diagnose': [], 'Get Driver': [], 'Get Operation': []}
    pending = manager.call_async('PrepareVM', 'sa{sv}', ('win11', {}))
    reads = {'Diagnose': lambda: manager.call('Diagnose', 's', ('win11',)),
             'Get Driver': lambda: manager.device(GPU, 'Driver'),
             'Get Operation': lambda: manager.get('Operation')}
    while not pending.done:
        for name, read in reads.items():
            started = time.monotonic()
            read()
            samples[name].append((time.monotonic() - started) * 1000)
        sim.bus.wait_until(lambda: pending.done, timeout=0.01)
    for name, values in samples.items():
        print(f'during a swap: {name:13s} {len(values):4d} calls, median {statistics.median(values):6.2f} ms, '
              f'p99 {percentile(values, 0.99):6.2f} ms (target median < 5)', flush=True)


if __name__ == '__main__':
    main()
