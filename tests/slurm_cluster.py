"""A one-node SLURM cluster in a temporary folder: munged, slurmctld and slurmd, stopped by pid.

Uses the Debian packages slurm-wlm and munge (SLURM 22.05). No accounting daemon (slurmdbd):
the executor plugin reads job states with squeue (MinJobAge keeps finished jobs listed).
The node offers what profiles/slurm asks of a GPU cluster node, so the profile is submitted
unchanged: `gpus` fake GPUs (GRES gpu whose device files are /dev/null-like character devices
in the folder: `--gpus=1` is scheduled and SLURM sets CUDA_VISIBLE_DEVICES, while the jobs run
on the CPU) and `cpus` / `memory_mb` as configured rather than as detected
(SlurmdParameters=config_overrides; nothing is enforced, TaskPlugin=task/none).
The plugin's job steps drop SLURM_CONF from the environment, so `srun` inside a job reads the
default /etc/slurm/slurm.conf: the cluster links it to its own config while it runs (and
refuses to start where a real one is installed). One test cluster runs on a machine at a time:
a second one waits for the first to stop (a file lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
LOCK = Path("/tmp/seqnn-test-slurm-cluster.lock")


def available() -> str | None:
    """None when the daemons are installed, else what is missing."""
    missing = [d for d in (*DAEMONS, "sbatch", "squeue", "sinfo", "scontrol")
               if not shutil.which(d)]
    if missing:
        return f"{', '.join(missing)} not installed (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "the test SLURM cluster runs its daemons as root"
    if SYSTEM_CONF.exists() and not SYSTEM_CONF.is_symlink():
        return f"{SYSTEM_CONF} belongs to a real cluster; not replacing it"
    return None


def _alive(pid: int, name: str | None = None) -> bool:
    """Whether `pid` runs (a zombie left for init to reap does not), as `name` if given."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            comm, state = f.read().rsplit(")", 1)
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state.split()[0] != "Z" and (name is None or comm.endswith(f"({name}"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """Start with `start()`, use `env` for sbatch/squeue clients, end with `stop()`."""

    def __init__(self, root: Path, cpus: int = 32, memory_mb: int = 192000, gpus: int = 8):
        self.root, self.cpus, self.memory_mb, self.gpus = Path(root), cpus, memory_mb, gpus
        self.host = socket.gethostname()
        self.conf = self.root / "slurm.conf"
        self.socket = self.root / "munge.socket"
        self.pids: dict[str, int] = {}
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self._lock = None

    def _write_conf(self):
        r = self.root
        for d in ("state", "spool"):
            (r / d).mkdir(parents=True, exist_ok=True)
        self.conf.write_text("\n".join([
            "ClusterName=seqnntest",
            f"SlurmctldHost={self.host}",
            "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", f"AuthInfo=socket={self.socket}",
            "CredType=cred/munge",
            f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
            f"StateSaveLocation={r / 'state'}", f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}", f"SlurmdPidFile={r / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'slurmctld.log'}", f"SlurmdLogFile={r / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core_Memory",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "MpiDefault=none", "ReturnToService=2", "MinJobAge=3600", "SlurmctldDebug=info",
            "SlurmdParameters=config_overrides", "GresTypes=gpu",
            f"NodeName={self.host} CPUs={self.cpus} RealMemory={self.memory_mb} "
            f"Gres=gpu:{self.gpus} State=UNKNOWN",
            "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
            "",
        ]))
        # slurmd reads gres.conf beside slurm.conf. SLURM 22.05 drops a GPU without a device
        # File, so each fake GPU is a character device like /dev/null (1:3) in this folder;
        # SLURM sets CUDA_VISIBLE_DEVICES to its index and opens nothing.
        (r / "dev").mkdir(exist_ok=True)
        for i in range(self.gpus):
            dev = r / "dev" / f"gpu{i}"
            if not dev.exists():
                os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        (r / "gres.conf").write_text(
            f"AutoDetect=off\nName=gpu File={r / 'dev'}/gpu[0-{self.gpus - 1}]\n")

    def _start(self, name: str, args: list[str], pidfile: Path):
        subprocess.run([name, *args], check=True, env=self.env, capture_output=True)
        for _ in range(100):
            if pidfile.exists() and pidfile.read_text().strip():
                self.pids[name] = int(pidfile.read_text().split()[0])
                return
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not start; see {self.root}")

    def _dead(self) -> list[str]:
        return [name for name, pid in self.pids.items() if not _alive(pid)]

    def _take_lock(self, wait_s: float):
        """Wait for another test cluster on this machine (another session's) to stop."""
        self._lock = open(LOCK, "w")
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self._lock.close()
                    self._lock = None
                    raise RuntimeError(f"another test SLURM cluster held {LOCK} for "
                                       f"{wait_s:.0f} s") from None
                time.sleep(1)

    def start(self, wait_s: float = 60, lock_wait_s: float = 1200) -> Cluster:
        self._take_lock(lock_wait_s)
        r = self.root
        try:
            self._write_conf()
            SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
            SYSTEM_CONF.unlink(missing_ok=True)
            SYSTEM_CONF.symlink_to(self.conf)
            key = r / "munge.key"
            key.write_bytes(os.urandom(1024))
            key.chmod(0o600)
            self._start("munged", ["--force", f"--socket={self.socket}", f"--key-file={key}",
                                   f"--pid-file={r / 'munged.pid'}",
                                   f"--log-file={r / 'munged.log'}",
                                   f"--seed-file={r / 'munged.seed'}"], r / "munged.pid")
            self._start("slurmctld", ["-f", str(self.conf)], r / "slurmctld.pid")
            self._start("slurmd", ["-f", str(self.conf)], r / "slurmd.pid")
            deadline, state = time.monotonic() + wait_s, None
            while time.monotonic() < deadline:
                dead = self._dead()
                if dead:  # e.g. slurmctld refusing the config: its log says why
                    raise RuntimeError(f"{', '.join(dead)} exited; see {r}/*.log")
                try:
                    state = subprocess.run(["sinfo", "-h", "-o", "%t"], env=self.env, text=True,
                                           capture_output=True, timeout=10).stdout.strip()
                except subprocess.TimeoutExpired:
                    state = "no answer"
                if state == "idle":
                    return self
                time.sleep(0.2)
            raise RuntimeError(f"node not idle after {wait_s:.0f} s (state {state!r}); "
                               f"see {r}/slurm*.log")
        except BaseException:
            self.stop()
            raise

    def stop(self):
        """Stop every daemon this cluster started, by pid, newest first."""
        for name in reversed(list(self.pids)):
            pid = self.pids.pop(name)
            if not _alive(pid, name):  # gone already (its pid is not signalled: reused?)
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not _alive(pid):
                    break
                time.sleep(0.1)
            else:  # e.g. slurmd still retrying to register with a controller that died
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if SYSTEM_CONF.is_symlink() and SYSTEM_CONF.resolve() == self.conf.resolve():
            SYSTEM_CONF.unlink()
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    def submitted_jobs(self) -> list[str]:
        """slurmctld's log lines of the batch jobs it accepted."""
        log = (self.root / "slurmctld.log").read_text()
        return [line for line in log.splitlines() if "_slurm_rpc_submit_batch_job" in line]

    def jobs(self) -> list[dict[str, str]]:
        """Every job slurmctld still holds (MinJobAge: an hour), as `scontrol -d show job` fields.

        E.g. JobId, JobState, Partition, Comment (the plugin's rule_<name>_wildcards_<...>),
        TresPerJob (gres:gpu:1 for --gpus=1), CpusPerTres (gres:gpu:8 for --cpus-per-gpu=8),
        JOB_GRES (what it was given: gpu:1, or (null)), NumCPUs, MinMemoryNode, TimeLimit.
        """
        out = subprocess.run(["scontrol", "-d", "-o", "show", "job"], env=self.env, text=True,
                             capture_output=True, check=True).stdout
        jobs = []
        for line in out.splitlines():
            # values have no spaces except Command/WorkDir-like paths, which come last
            fields = {}
            for item in line.split(" "):
                key, sep, value = item.partition("=")
                if sep:
                    fields[key] = value
            if fields:
                jobs.append(fields)
        return jobs
