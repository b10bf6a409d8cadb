"""Run model code in a forked worker, so that nothing it does can stand in for a verdict.

The parent accepts an answer only as a complete message on a private pipe, written by the worker
after the function returned or raised. A worker that ends any other way (sys.exit, os._exit, a
signal, a crash inside C) is reported as exactly that, with where it happened: exit 2, never the
exit code the model file chose. A worker still running at the deadline has its stack dumped by
faulthandler (which works even inside a C call) and is killed; the error names the phase and line.

fork, not spawn: the child starts with torch, the spec and every module already imported, so
isolation costs milliseconds instead of a second interpreter importing torch. The CLI imports
torch but runs no operator before forking; a process that already ran torch's OpenMP pool (a test
suite calling the CLI in-process) cannot use that pool in a child (libgomp is not fork-safe), so
such children compute on one thread (`mark_fresh_process` tells the two cases apart).

`prestart` goes one step further for the CLI: it forks the worker as the process starts, before most
of the CLI's own imports, and the worker imports torch (its warm-up) while the parent parses the
command line; `run_isolated` then hands that worker its job over a pipe. The parent never imports
torch, so the two start-ups overlap and the parent's exit is quick (docs/benchmarks.md section 1).
"""

from __future__ import annotations

import atexit
import codecs
import faulthandler
import os
import pickle
import select
import signal
import struct
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable

from alignguard.errors import AlignguardError, ModelFileError
from alignguard.isolation import locate

HEADER = struct.Struct("!Q")
DUMP_WAIT_S = 1.0  # how long a hung worker gets to write its stack before it is killed
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_fresh = False
_channel: tuple[int, int] | None = None  # in a worker: (its pid, the result pipe), for set_deadline
# Verdict-free messages on the result pipe: a moved deadline, a phase the worker timed before its job.
CONTROL = ("deadline", "phase")


def set_deadline(seconds: float | None, activity: str) -> None:
    """Called by code running in a worker: from now on the parent stops the worker `seconds` later (None
    or 0: never), naming `activity` in the message. A command bounds its model-running phases this way
    (train's gate, but not the training after it; each mutant afresh). Outside a worker: nothing."""
    if _channel is not None and _channel[0] == os.getpid():
        _send(_channel[1], ("deadline", seconds or None, activity))


def mark_fresh_process() -> None:
    """Called by the CLI entry point: no torch operator has run yet, so a forked worker may use threads."""
    global _fresh
    _fresh = True


def isolation_available() -> bool:
    return hasattr(os, "fork")


@dataclass
class _Relay:
    """A worker's output stream that the parent copies into one of its own (non-file) streams."""

    read_fd: int
    write_fd: int
    stream: Any
    decoder: codecs.IncrementalDecoder


def run_isolated(function: Callable, *args: Any, activity: str = "the check", timeout: float | None = None,
                 stdout_to_stderr: bool = False, passes: tuple[type[BaseException], ...] = (),
                 timings: dict[str, float] | None = None, **kwargs: Any) -> Any:
    """`function(*args, **kwargs)` in a forked worker: its return value, or what it raised.

    AlignguardError and the `passes` exception types are raised again here as they were; any other
    exception, an exit, a signal or the `timeout` (seconds) becomes a ModelFileError (exit 2) that
    names `activity`, the phase and the line of user code. With `stdout_to_stderr`, whatever the
    worker prints goes to standard error, so a report on standard output stays machine-readable.
    A worker `prestart`ed by this process takes the job when it can; `timings` receives the phases it
    timed before (its warm-up).
    """
    if not isolation_available():  # Windows: no fork; run in-process (documented in docs/architecture.md)
        return function(*args, **kwargs)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    _reap_exited()
    targets, relays = _plan_streams(stdout_to_stderr)
    worker = _take_prestarted(function, args, kwargs, targets, relays, passes)
    if worker is None:
        worker = _fork(function, args, kwargs, targets, passes)
    pid, result_r, dump = worker
    for relay in relays:
        os.close(relay.write_fd)
    try:
        with _forwarding_signals(pid):
            inbox, status, hung = _collect(pid, result_r, relays, _Deadline(timeout, activity))
        dump.seek(0)
        frames = locate.frames_of_dump(dump.read().decode("utf-8", "replace"))
    finally:
        os.close(result_r)
        dump.close()
    if timings is not None:
        timings.update(inbox.phases)
    return _verdict(inbox.messages, status, hung, frames, activity)


def _fork(function, args, kwargs, targets: dict[int, int], passes) -> tuple[int, int, Any]:
    """A worker forked now, already running `function`: (pid, result pipe, dump file)."""
    result_r, result_w = os.pipe()
    dump = tempfile.TemporaryFile()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the worker: never returns
        _worker(function, args, kwargs, result_w, dump.fileno(), targets, parent, passes)
    os.close(result_w)
    return pid, result_r, dump


# --- a worker started before it is needed ----------------------------------------------------


@dataclass
class _Prestarted:
    pid: int
    job_w: int
    result_r: int
    dump: Any


_prestarted: _Prestarted | None = None


def prestart(warm_up: Callable[[], dict[str, float] | None], label: str) -> None:
    """Fork the worker now; it runs `warm_up` (e.g. imports torch) and then waits for its job.

    Called by the CLI entry point before its own imports, for commands that will run model code:
    the parent need not import torch at all. The first `run_isolated` of this process sends the
    worker its job, and gets back the phases `warm_up` timed (the dict it returns; else its whole
    time, named `label`); a process that ends without a job closes the job pipe, and the worker
    exits without a word. Once per process.
    """
    global _prestarted
    if _prestarted is not None or not isolation_available():
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    job_r, job_w = os.pipe()
    result_r, result_w = os.pipe()
    dump = tempfile.TemporaryFile()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the worker: never returns
        os.close(job_w)
        os.close(result_r)
        _waiting_worker(warm_up, label, job_r, result_w, dump.fileno(), parent)
    os.close(job_r)
    os.close(result_w)
    _prestarted = _Prestarted(pid, job_w, result_r, dump)
    atexit.register(_discard_prestarted)


def prestarted() -> bool:
    """Whether a prestarted worker waits for this process's first job (the caller need not import torch)."""
    return _prestarted is not None


def _take_prestarted(function, args, kwargs, targets: dict[int, int], relays: list, passes):
    """The prestarted worker, given this job; None (and the worker discarded) when it cannot take it: the
    worker's streams are the ones it inherited (fd 1 and 2), and the job crosses a pipe (pickled)."""
    global _prestarted
    worker, _prestarted = _prestarted, None
    if worker is None:
        return None
    try:
        if relays or not set(targets.values()) <= {1, 2}:
            raise ValueError("the streams to write to are not the worker's own")
        payload = pickle.dumps((function, args, kwargs, targets, passes), protocol=pickle.HIGHEST_PROTOCOL)
        _write_all(worker.job_w, HEADER.pack(len(payload)) + payload)
        os.close(worker.job_w)
    except Exception:  # unpicklable arguments, a worker that died while warming up: fork afresh
        _discard(worker)
        return None
    return worker.pid, worker.result_r, worker.dump


def _discard_prestarted() -> None:
    global _prestarted
    worker, _prestarted = _prestarted, None
    if worker is not None:
        _discard(worker)


def _discard(worker: _Prestarted) -> None:
    """An unused worker: closing its job pipe ends it (it may still be importing: the signal ends that)."""
    for fd in (worker.job_w, worker.result_r):
        try:
            os.close(fd)
        except OSError:
            pass
    worker.dump.close()
    _signal_group(worker.pid, signal.SIGKILL)
    try:
        os.waitpid(worker.pid, 0)
    except ChildProcessError:
        pass


# --- the parent ------------------------------------------------------------------------------


def _real_fd(stream) -> int | None:
    try:
        return stream.fileno()
    except Exception:  # io.UnsupportedOperation, AttributeError: an in-memory stream (a test runner's)
        return None


def _plan_streams(stdout_to_stderr: bool) -> tuple[dict[int, int], list[_Relay]]:
    """For the worker's fd 1 and 2: the fd to write to (the parent's own, or a relay pipe's)."""
    targets: dict[int, int] = {}
    relays: list[_Relay] = []
    for child_fd, stream in ((1, sys.stderr if stdout_to_stderr else sys.stdout), (2, sys.stderr)):
        fd = _real_fd(stream)
        if fd is None:
            read_fd, write_fd = os.pipe()
            relays.append(_Relay(read_fd, write_fd, stream, codecs.getincrementaldecoder("utf-8")("replace")))
            fd = write_fd
        targets[child_fd] = fd
    return targets, relays


@contextmanager
def _forwarding_signals(pid: int):
    """The worker runs in its own process group (so a terminal's Ctrl-C reaches it once, through us)."""
    def forward(signum, frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    previous = {}
    try:
        for sig in FORWARDED:
            previous[sig] = signal.signal(sig, forward)
    except ValueError:  # not the main thread: signals cannot be handled here, the worker gets its own
        pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Deadline:
    """When the worker is stopped, and what it was doing: set by run_isolated, moved by set_deadline."""

    def __init__(self, seconds: float | None, activity: str) -> None:
        self.move(seconds, activity)

    def move(self, seconds: float | None, activity: str) -> None:
        self.seconds, self.activity = seconds, activity
        self.at = None if seconds is None else time.monotonic() + seconds

    def wait(self) -> float:
        return 0.2 if self.at is None else max(0.0, min(0.2, self.at - time.monotonic()))

    def passed(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at


class _Inbox:
    """Messages from the result pipe, decoded as soon as each is complete (a deadline acts at once)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.offset = 0
        self.messages: list[tuple] = []
        self.phases: dict[str, float] = {}
        self.broken = False

    def feed(self, chunk: bytes) -> list[tuple]:
        self.data.extend(chunk)
        new: list[tuple] = []
        while not self.broken and self.offset + HEADER.size <= len(self.data):
            (size,) = HEADER.unpack_from(self.data, self.offset)
            start, end = self.offset + HEADER.size, self.offset + HEADER.size + size
            if end > len(self.data):
                break  # the rest is still on its way (or cut short: the worker died while writing)
            try:
                new.append(pickle.loads(bytes(self.data[start:end])))
            except Exception:
                self.broken = True  # damaged: trust nothing after it
                break
            self.offset = end
        self.messages.extend(message for message in new if message[0] not in CONTROL)
        self.phases.update({message[1]: message[2] for message in new if message[0] == "phase"})
        return new


def _messages(data: bytes) -> list[tuple]:
    """The verdict-bearing messages of a whole pipe's bytes."""
    inbox = _Inbox()
    inbox.feed(data)
    return inbox.messages


def _collect(pid: int, result_r: int, relays: list[_Relay], deadline: _Deadline):
    """Read the result pipe and relay output until the worker ends; kill it at the deadline."""
    inbox = _Inbox()
    relay_by_fd = {relay.read_fd: relay for relay in relays}
    open_fds = {result_r, *relay_by_fd}
    ended = _exit_fd(pid)
    status, hung = None, None
    while status is None:
        _pump(open_fds, result_r, inbox, relay_by_fd, deadline.wait(), deadline, ended)
        reaped, raw = os.waitpid(pid, os.WNOHANG)
        if reaped:
            status = os.waitstatus_to_exitcode(raw)
        elif inbox.messages and not relays:
            # the verdict is complete and the worker only exits after it: do not wait for the kernel to
            # free its memory (0.05-0.25 s), reap it later; with relays, its last output is still to come
            _exiting.append(pid)
            break
        elif deadline.passed():
            hung = deadline
            _signal_group(pid, signal.SIGUSR1)  # faulthandler writes the stack
            time.sleep(DUMP_WAIT_S)
            _signal_group(pid, signal.SIGKILL)
            status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    drain_until = time.monotonic() + DUMP_WAIT_S  # a process the worker forked may keep a pipe open
    while (status is not None and _pump(open_fds, result_r, inbox, relay_by_fd, 0.0, None)
           and time.monotonic() < drain_until):
        pass  # what the worker wrote before it ended
    for fd in relay_by_fd:
        os.close(fd)
    if ended is not None:
        os.close(ended)
    for relay in relays:
        relay.stream.write(relay.decoder.decode(b"", final=True))
    return inbox, status, hung


def _exit_fd(pid: int) -> int | None:
    """A descriptor that becomes readable when the worker ends (Linux pidfd), else None (then the
    parent looks every 10 ms once the worker has closed its pipes: it is on its way out)."""
    try:
        return os.pidfd_open(pid)  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return None


_exiting: list[int] = []  # workers that sent their verdict and are still ending


def _reap_exited(block: bool = False) -> None:
    for pid in list(_exiting):
        try:
            reaped, _ = os.waitpid(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            reaped = pid
        if reaped:
            _exiting.remove(pid)


def reap_workers() -> None:
    """Wait for the workers that sent their verdict to end (the next run_isolated reaps those already
    gone). At exit, so that no worker outlives the command and its CPU and memory count as the command's
    (a caller's wait4); the CLI calls it after its report is written."""
    _reap_exited(block=True)


atexit.register(reap_workers)


def _pump(open_fds: set[int], result_r: int, inbox: _Inbox, relays: dict[int, _Relay], wait: float,
          deadline: _Deadline | None, ended: int | None = None) -> bool:
    """One select round (returning early when the worker ends); True when something was read."""
    watched = [*open_fds, *([] if ended is None else [ended])]
    if not watched:
        time.sleep(min(wait, 0.01))
        return False
    readable, _, _ = select.select(watched, [], [], wait)
    for fd in readable:
        if fd == ended:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            open_fds.discard(fd)
        elif fd == result_r:
            for message in inbox.feed(chunk):
                if message[0] == "deadline" and deadline is not None:
                    deadline.move(message[1], message[2])
        else:
            relay = relays[fd]
            relay.stream.write(relay.decoder.decode(chunk))
            relay.stream.flush()
    return bool(readable)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _verdict(messages: list[tuple], status: int | None, hung: _Deadline | None, frames, activity: str):
    final = messages[-1] if messages else None
    if hung is not None:
        where = locate.describe(frames) if frames else "at an unknown place (no stack could be read)"
        raise ModelFileError(
            f"{hung.activity} did not finish within --timeout {hung.seconds:g} s; it was stopped {where}",
            fix="make that code return (a loop without end, a wait on input or a lock?), or raise --timeout "
            "if the model really needs longer")
    kind = final[0] if final else None
    if kind == "ok":
        return final[1]
    if kind == "raise":
        raise final[1]
    if kind == "interrupted":
        raise KeyboardInterrupt
    if kind == "exit":
        _, code, where, how = final
        raise ModelFileError(
            f"the model file exited before {activity} finished ({how}({code!r}) {where})",
            fix="a model file must return from its functions; raise an exception to report a problem, and "
            "remove exit calls (sys.exit, os._exit, quit) from code the check runs")
    if kind == "crash":
        _, name, message, doing, where, text = final
        if os.environ.get("ALIGNGUARD_DEBUG", "") not in ("", "0"):
            print(text, file=sys.stderr, end="")
        during = f" during {doing}" if doing and doing != activity else ""
        if where:
            raise ModelFileError(f"{activity} stopped{during}: the model code raised {name}: {message}",
                                 where=where, fix="fix the error at that line (run with --debug for the traceback)")
        raise ModelFileError(f"{activity} stopped{during} on an internal error, {name}: {message}",
                             fix="this is an alignguard bug: report it with the output of `alignguard --debug ...`")
    how = f"killed by {signal.Signals(-status).name}" if status < 0 else f"exit code {status}"
    where = f" {locate.describe(frames)}" if frames else ""
    raise ModelFileError(
        f"the model file's process ended before {activity} finished ({how}, no answer{where})",
        fix="a crash inside a C extension, running out of memory, or something killing the process: run the "
        "model file's functions directly in Python to reproduce")


# --- the worker ------------------------------------------------------------------------------


def _worker(function, args, kwargs, result_fd: int, dump_fd: int, targets: dict[int, int], parent: int,
            passes) -> None:
    real_exit = os._exit
    try:
        _settle(result_fd, dump_fd, targets, parent, real_exit)
        try:
            message = ("ok", function(*args, **kwargs))
        except SystemExit as exc:
            message = ("exit", exc.code if exc.code is not None else 0,
                       locate.describe(locate.frames_of_traceback(exc.__traceback__)), "sys.exit")
        except KeyboardInterrupt:
            message = ("interrupted",)
        except BaseException as exc:
            message = _raised(exc, passes)
        _send(result_fd, message)
    except BaseException as exc:  # the plumbing itself failed: say so rather than vanish
        try:
            _send(result_fd, ("crash", type(exc).__name__, _short(exc), None, None, traceback.format_exc()))
        except BaseException:
            pass
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        real_exit(0)


def _waiting_worker(warm_up: Callable[[], None], label: str, job_fd: int, result_fd: int, dump_fd: int,
                    parent: int) -> None:
    """A prestarted worker: warm up, wait for the job, run it as `_worker`; end quietly without one."""
    real_exit = os._exit
    try:
        os.setpgid(0, 0)  # a terminal's Ctrl-C goes to the parent, which forwards it once the job runs
        _die_with_parent(parent, real_exit)
        start = time.perf_counter()
        try:
            phases = warm_up()
        except Exception:
            phases = None  # the job meets the same failure where it can be reported (e.g. importing torch)
        if not isinstance(phases, dict):
            phases = {label: time.perf_counter() - start}
        data = _read_job(job_fd)
    except BaseException:  # interrupted while waiting: nobody is listening
        real_exit(1)
    if data is None:  # the parent ended, or needed no worker
        real_exit(0)
    try:
        job = pickle.loads(data)
    except BaseException as exc:
        _send(result_fd, ("crash", type(exc).__name__, _short(exc), None, None, traceback.format_exc()))
        real_exit(0)
    function, args, kwargs, targets, passes = job
    for name, seconds in phases.items():
        _send(result_fd, ("phase", name, seconds))
    _worker(function, args, kwargs, result_fd, dump_fd, targets, parent, passes)


def _read_job(fd: int) -> bytes | None:
    """The one framed message on the job pipe (pickled), or None when the pipe closed without one."""
    data = bytearray()
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        data.extend(chunk)
    os.close(fd)
    if len(data) < HEADER.size:
        return None
    (size,) = HEADER.unpack_from(data)
    if len(data) != HEADER.size + size:
        return None
    return bytes(data[HEADER.size:])


def _settle(result_fd: int, dump_fd: int, targets: dict[int, int], parent: int, real_exit) -> None:
    import io

    global _channel
    os.setpgid(0, 0)
    _die_with_parent(parent, real_exit)
    _channel = (os.getpid(), result_fd)
    devnull = os.open(os.devnull, os.O_RDONLY)  # input() fails at once instead of stopping a background job
    os.dup2(devnull, 0)
    os.close(devnull)
    for child_fd, target in targets.items():
        if target != child_fd:
            os.dup2(target, child_fd)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="replace",
                                  line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
                                  line_buffering=True)
    faulthandler.enable(file=dump_fd, all_threads=False)  # SIGSEGV and friends: where it crashed
    faulthandler.register(signal.SIGUSR1, file=dump_fd, all_threads=False)  # the parent's deadline
    for sig in FORWARDED:
        signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
    me = os.getpid()

    def exit_reported(code: int = 0) -> None:
        if os.getpid() == me:  # not a process the model code forked (DataLoader workers exit this way)
            _send(result_fd, ("exit", code, locate.describe(locate.frames_of_stack(sys._getframe(1))), "os._exit"))
        real_exit(code)

    os._exit = exit_reported
    if not _fresh and "torch" in sys.modules:
        _one_thread(sys.modules["torch"])


def _die_with_parent(parent: int, real_exit) -> None:
    """Linux: SIGTERM when the parent dies (a trainer checkpoints on it), so no worker is orphaned."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        real_exit(1)


def _one_thread(torch) -> None:
    """The parent already used torch's OpenMP pool, which a forked child cannot (it would hang)."""
    setter = torch.set_num_threads
    setter(1)
    torch.set_num_threads = lambda count: setter(1)


def _raised(exc: BaseException, passes) -> tuple:
    if isinstance(exc, (AlignguardError, *passes)):
        try:
            pickle.loads(pickle.dumps(exc))
            return ("raise", exc)
        except Exception:
            if isinstance(exc, AlignguardError):
                return ("raise", ModelFileError(exc.what, where=exc.where, fix=exc.fix))
    frames = locate.frames_of_traceback(exc.__traceback__)
    return ("crash", type(exc).__name__, _short(exc), locate.phase(frames), locate.user_location(frames),
            traceback.format_exc())


def _short(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = "(unprintable)"
    return text if len(text) <= 300 else text[:297] + "..."


def _send(fd: int, message: tuple) -> None:
    try:
        payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        payload = pickle.dumps(("crash", type(exc).__name__, f"the result could not be sent back: {_short(exc)}",
                                None, None, traceback.format_exc()))
    _write_all(fd, HEADER.pack(len(payload)) + payload)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
