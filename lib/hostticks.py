"""MicroPython's time.ticks_ms, ticks_diff and sleep_ms for CPython, which
lacks them. Imported only there (by lib/clock.py and lib/httpc.py), so a
board never loads it."""
import time


def ticks_ms():
    return int(time.monotonic() * 1000)


def ticks_diff(a, b):
    return a - b


def sleep_ms(ms):
    time.sleep(ms / 1000)
