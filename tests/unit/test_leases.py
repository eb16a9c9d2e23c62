"""Station leases: one holder at a time, by key and by the resources a station is made of, across processes."""

from __future__ import annotations

import multiprocessing
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from rig.station.leases import DB_NAME, LeaseBusy, LeaseLost, SqliteLeases

STOP_BOUND_S = 5.0

HOLDER = textwrap.dedent(
    """
    import socket, sys, time
    if sys.argv[3] == "other-host":
        socket.gethostname = lambda: "other-host"  # a holder on another host: only its expiry tells it is dead
    from rig.station.leases import SqliteLeases
    leases = SqliteLeases(sys.argv[1], ttl_s=float(sys.argv[2]))
    lease = leases.acquire("rack/esc1", ["port:/dev/esc1"], bound_s=5, holder="doomed-job")
    print("held", flush=True)
    time.sleep(60)
    """
)


def test_a_killed_holder_on_this_host_frees_the_station_at_once(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), "30", "this-host"], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    leases = SqliteLeases(tmp_path)
    assert leases.holder("rack/esc1") is not None
    holder.send_signal(signal.SIGKILL)
    holder.wait(STOP_BOUND_S)
    assert leases.holder("rack/esc1") is None  # its pid is gone: not a holder any more
    with leases.acquire("rack/esc1", bound_s=0.0, holder="next-job") as taken:
        assert leases.holder("rack/esc1") == taken.info


def test_a_killed_holders_lease_elsewhere_is_taken_over_once_it_expires(tmp_path: Path) -> None:
    ttl_s = 1.0
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), str(ttl_s), "other-host"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        leases = SqliteLeases(tmp_path, ttl_s=ttl_s)
        time.sleep(ttl_s * 1.5)  # the heartbeat keeps it alive past its first expiry
        assert leases.holder("rack/esc1") is not None
        holder.send_signal(signal.SIGKILL)
        holder.wait(STOP_BOUND_S)
        killed_at = time.monotonic()
        lease, current = leases.try_acquire("rack/esc1", [], "next-job")
        assert lease is None and current is not None and current.holder == "doomed-job"  # not yet expired
        with leases.acquire("rack/esc1", bound_s=ttl_s * 3, holder="next-job") as taken:
            assert leases.holder("rack/esc1") == taken.info
            waited = time.monotonic() - killed_at
        assert 0.0 < waited <= ttl_s + 0.5
        assert leases.holder("rack/esc1") is None  # released
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(STOP_BOUND_S)


def test_a_lease_lost_to_another_run_is_reported_at_once(tmp_path: Path) -> None:
    leases = SqliteLeases(tmp_path, ttl_s=0.3)
    lost: list[LeaseLost] = []
    lease, _ = leases.try_acquire("rack/esc1", [], "slow-job")  # no heartbeat yet: it expires
    assert lease is not None
    lease.on_lost.append(lost.append)
    time.sleep(0.4)
    other, _ = leases.try_acquire("rack/esc1", [], "next-job")
    assert other is not None
    lease.start_heartbeat()
    deadline = time.monotonic() + 2.0
    while not lost and time.monotonic() < deadline:
        time.sleep(0.02)
    assert lost and "taken over" in str(lost[0])
    with pytest.raises(LeaseLost):
        lease.check()
    lease.release()  # does not free the other run's lease
    assert leases.holder("rack/esc1") == other.info


def test_waiting_for_a_held_station_is_bounded_and_names_the_holder(tmp_path: Path) -> None:
    leases = SqliteLeases(tmp_path)
    with leases.acquire("rack/esc1", bound_s=1.0, holder="job-1"):
        start = time.monotonic()
        with pytest.raises(LeaseBusy, match=r"station rack/esc1 is held by job-1 until .*; waited 0.3 s"):
            leases.acquire("rack/esc1", bound_s=0.3, holder="job-2")
        assert time.monotonic() - start < 1.0


def test_a_shared_resource_conflicts_across_keys(tmp_path: Path) -> None:
    """A command line on the port (its own key) finds the station a run holds under its rack name."""
    leases = SqliteLeases(tmp_path)
    with leases.acquire("sim/esc-602", ["port:/run/by-id/esc", "probe:remote:1"], bound_s=1.0, holder="pytest"):
        with pytest.raises(LeaseBusy, match=r"held by pytest .* as sim/esc-602, which shares its port:/run/by-id/esc"):
            leases.acquire("port/run/by-id/esc", ["port:/run/by-id/esc"], bound_s=0.0, holder="rig update")
        with leases.acquire("sim/esc-340", ["port:/run/by-id/other"], bound_s=0.0, holder="pytest 2"):
            pass  # another station is free


def _lock_for(path: Path, seconds: float, ready: threading.Event) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    ready.set()
    time.sleep(seconds)
    db.execute("ROLLBACK")
    db.close()


def _fight(directory: str, name: str, rounds: int, log: multiprocessing.Queue) -> None:
    leases = SqliteLeases(directory, ttl_s=1.5, busy_s=0.2)
    for _ in range(rounds):
        try:
            lease = leases.acquire("rack/esc1", ["port:/dev/esc1"], bound_s=0.5, holder=name)
        except LeaseBusy:
            continue
        log.put(("start", name, time.time()))
        time.sleep(0.05)
        log.put(("end", name, time.time()))
        lease.release()


def test_two_runs_never_hold_one_station_while_a_third_locks_the_database(tmp_path: Path) -> None:
    """A third process holds the database's write lock for seconds; renewals and takes wait it out, and the
    two fighting runs never hold the station at the same time."""
    SqliteLeases(tmp_path)
    log: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
    fighters = [
        multiprocessing.get_context("spawn").Process(target=_fight, args=(str(tmp_path), f"run-{n}", 12, log))
        for n in (1, 2)
    ]
    for fighter in fighters:
        fighter.start()
    ready = threading.Event()
    time.sleep(0.5)
    locker = threading.Thread(target=_lock_for, args=(tmp_path / DB_NAME, 1.0, ready))
    locker.start()
    ready.wait(5)
    for fighter in fighters:
        fighter.join(60)
        assert fighter.exitcode == 0
    locker.join(5)
    events = []
    while not log.empty():
        events.append(log.get())
    events.sort(key=lambda e: e[2])
    holding: set[str] = set()
    for kind, name, _ in events:
        if kind == "start":
            assert not holding, f"{name} took the station while {holding} held it"
            holding.add(name)
        else:
            holding.discard(name)
    assert sum(1 for e in events if e[0] == "start") >= 2


def test_a_heartbeat_outlasts_a_locked_database(tmp_path: Path) -> None:
    """A transient 'database is locked' shorter than the lease's life does not lose the lease."""
    leases = SqliteLeases(tmp_path, ttl_s=1.5, busy_s=0.1)
    with leases.acquire("rack/esc1", bound_s=1.0, holder="steady") as lease:
        ready = threading.Event()
        locker = threading.Thread(target=_lock_for, args=(tmp_path / DB_NAME, 0.7, ready))
        locker.start()
        ready.wait(5)
        time.sleep(1.5)  # the heartbeat (every 0.5 s) meets the lock, waits, and renews after it
        locker.join(5)
        lease.check()
        assert leases.holder("rack/esc1") is not None
