"""Every process that a command started, found and killed by pid, whatever its
process group or session.

Killing a command's process group is not enough: torchrun starts each worker in a
session of its own (setsid), and a worker whose launcher is gone is re-parented
to init, where no walk down from the launcher finds it. So a command is started
with :func:`marked_env`: a token in its environment, which every process it starts
inherits (bash, torchrun's workers, data loader workers), orphans included; /proc
then finds them all. A process started with an environment of its own drops the
token; the walk by parent pid from a marked process still finds it while its
parent lives.

Linux only (/proc). The tests' process harness (``Watched`` in tests/helpers.py)
and tools/dev/mutants.py (mutants with a time limit) use it.
"""
import os
import signal
import time

MARK = 'MMPOOLFORMER_PROCESS_TREE'  # the variable that carries the tokens


def marked_env(token: str, env=None) -> dict:
    """``env`` (default: this process's environment) with ``token`` added to the
    tokens it carries, so that a command started inside a marked one keeps both."""
    env = dict(os.environ if env is None else env)
    env[MARK] = ' '.join([*env.get(MARK, '').split(), token])
    return env


def _read(path: str) -> bytes:
    with open(path, 'rb') as f:
        return f.read()


def _live_processes() -> dict:
    """{pid: (parent pid, tokens)} of the processes alive now; zombies are dead
    already (their parent has only to reap them) and left out."""
    found = {}
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            # The command name, in parentheses, may hold spaces and parentheses itself.
            state, ppid = _read(f'/proc/{name}/stat').rsplit(b')', 1)[1].split()[:2]
        except (OSError, ValueError):  # gone meanwhile
            continue
        if state in (b'Z', b'X'):
            continue
        try:
            environ = _read(f'/proc/{name}/environ').split(b'\0')
        except OSError:  # another user's process, or gone meanwhile
            environ = []
        tokens = next((entry.split(b'=', 1)[1].decode(errors='replace').split()
                       for entry in environ if entry.startswith(f'{MARK}='.encode())), [])
        found[int(name)] = (int(ppid), tokens)
    return found


def command_line(pid: int) -> str:
    try:
        return _read(f'/proc/{pid}/cmdline').replace(b'\0', b' ').decode(errors='replace').strip()
    except OSError:
        return '(gone)'


def tree(token: str, root=None) -> list:
    """The pids of the live processes that carry ``token``, and of every process
    below one of them or below ``root`` (a pid); never this process."""
    processes = _live_processes()
    children = {}
    for pid, (ppid, _) in processes.items():
        children.setdefault(ppid, []).append(pid)
    todo = [pid for pid, (_, tokens) in processes.items() if token in tokens]
    todo += [root] if root in processes else []
    found = set()
    while todo:
        pid = todo.pop()
        if pid not in found and pid != os.getpid():
            found.add(pid)
            todo += children.get(pid, [])
    return sorted(found)


def kill_tree(token: str, root=None, wait_s: float = 10.0) -> dict:
    """SIGKILL each process of :func:`tree`, by pid, and again for any found on a
    later pass (one started meanwhile), until none is alive or ``wait_s`` seconds
    have passed. Returns {pid: command line} of the processes killed."""
    killed = {}
    deadline = time.monotonic() + wait_s
    while (alive := tree(token, root)) and time.monotonic() < deadline:
        for pid in alive:
            if pid not in killed:
                killed[pid] = command_line(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    return killed
