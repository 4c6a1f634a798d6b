"""A one-node SLURM cluster in a temporary folder: munged, slurmctld and slurmd, stopped by pid.

Uses the Debian packages slurm-wlm and munge (SLURM 22.05). No accounting daemon (slurmdbd):
the executor plugin reads job states with squeue (MinJobAge keeps finished jobs listed).
The plugin's job steps drop SLURM_CONF from the environment, so `srun` inside a job reads the
default /etc/slurm/slurm.conf: the cluster links it to its own config while it runs (and
refuses to start where a real one is installed).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")


def available() -> str | None:
    """None when the daemons are installed, else what is missing."""
    missing = [d for d in (*DAEMONS, "sbatch", "squeue") if not shutil.which(d)]
    if missing:
        return f"{', '.join(missing)} not installed (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "the test SLURM cluster runs its daemons as root"
    if SYSTEM_CONF.exists() and not SYSTEM_CONF.is_symlink():
        return f"{SYSTEM_CONF} belongs to a real cluster; not replacing it"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """Start with `start()`, use `env` for sbatch/squeue clients, end with `stop()`."""

    def __init__(self, root: Path, cpus: int = 2, memory_mb: int = 8000):
        self.root, self.cpus, self.memory_mb = Path(root), cpus, memory_mb
        self.host = socket.gethostname()
        self.conf = self.root / "slurm.conf"
        self.socket = self.root / "munge.socket"
        self.pids: dict[str, int] = {}
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

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
            f"NodeName={self.host} CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN",
            "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
            "",
        ]))

    def _start(self, name: str, args: list[str], pidfile: Path):
        subprocess.run([name, *args], check=True, env=self.env, capture_output=True)
        for _ in range(100):
            if pidfile.exists() and pidfile.read_text().strip():
                self.pids[name] = int(pidfile.read_text().split()[0])
                return
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not start; see {self.root}")

    def start(self) -> Cluster:
        self._write_conf()
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SYSTEM_CONF.unlink(missing_ok=True)
        SYSTEM_CONF.symlink_to(self.conf)
        key = self.root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        r = self.root
        self._start("munged", ["--force", f"--socket={self.socket}", f"--key-file={key}",
                               f"--pid-file={r / 'munged.pid'}", f"--log-file={r / 'munged.log'}",
                               f"--seed-file={r / 'munged.seed'}"], r / "munged.pid")
        self._start("slurmctld", ["-f", str(self.conf)], r / "slurmctld.pid")
        self._start("slurmd", ["-f", str(self.conf)], r / "slurmd.pid")
        for _ in range(150):
            state = subprocess.run(["sinfo", "-h", "-o", "%t"], env=self.env, text=True,
                                   capture_output=True).stdout.strip()
            if state == "idle":
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"node not idle (state {state!r}); see {self.root}/slurm*.log")

    def stop(self):
        """Stop every daemon this cluster started, by pid, newest first."""
        for name in reversed(list(self.pids)):
            pid = self.pids.pop(name)
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
        if SYSTEM_CONF.is_symlink() and SYSTEM_CONF.resolve() == self.conf.resolve():
            SYSTEM_CONF.unlink()

    def submitted_jobs(self) -> list[str]:
        """Names of the batch jobs slurmctld accepted (its log)."""
        log = (self.root / "slurmctld.log").read_text()
        return [line for line in log.splitlines() if "_slurm_rpc_submit_batch_job" in line]
