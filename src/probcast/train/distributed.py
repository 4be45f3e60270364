"""Multi-process (multi-host) data-parallel training with ``jax.distributed``.

One ``probcast train`` process runs per host (or per GPU); together they form one JAX
runtime whose mesh spans every device of every process, so the same training loop runs
data parallel over all of them. The cluster is named by flags or environment variables:

==========================  =====================================  =========================
flag                        environment                            meaning
==========================  =====================================  =========================
``--coordinator=HOST:PORT`` ``JAX_COORDINATOR_ADDRESS``            process 0's address
``--num-processes=N``       ``JAX_NUM_PROCESSES``                  processes in the run
``--process-id=I``          ``JAX_PROCESS_ID``, else               this process, ``0..N-1``
                            ``JOB_COMPLETION_INDEX`` (Kubernetes)
``--distributed-timeout=S`` ``PROBCAST_DISTRIBUTED_TIMEOUT``       seconds to wait for all
==========================  =====================================  =========================

Flags win over the environment. With no coordinator (or ``N = 1``) training is the ordinary
single-process one, which already uses every local device.

The scheme, kept simple and exactly reproducible: every process reads the whole training
table and computes the same feature spec; the fit rows are replicated on every device and
each step's batch is split over all devices (``train.data``), so every process holds the
same parameters after every step. All processes call the orbax saves and restores of the
checkpoints together (orbax coordinates them: the primary process writes the metadata and
commits), which needs the work directory on a filesystem all processes share. Process 0
takes the work directory's lock and writes every other file of the artefact, the tracking
run and the progress log; process ``I > 0`` writes its own copies of those files into a
private folder ``<workdir>.process-<I>`` whose checkpoint folders are links to the shared
ones, logs only warnings, and waits at a barrier at the end until process 0 has written
the completion marker.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FLAGS = {
    "--coordinator": "coordinator",
    "--num-processes": "num_processes",
    "--process-id": "process_id",
    "--distributed-timeout": "timeout_s",
}
ENV = {
    "coordinator": ("JAX_COORDINATOR_ADDRESS",),
    "num_processes": ("JAX_NUM_PROCESSES",),
    "process_id": ("JAX_PROCESS_ID", "JOB_COMPLETION_INDEX"),
    "timeout_s": ("PROBCAST_DISTRIBUTED_TIMEOUT",),
}
DEFAULT_TIMEOUT_S = 300
GRACE_S = 10  # jax's own join timeout is longer than ours: see initialize
HELP = """\
multi-process training (docs/deployment.md, "Multi-GPU and multi-host training"):
  --coordinator=HOST:PORT     process 0's address (env JAX_COORDINATOR_ADDRESS)
  --num-processes=N           processes in the run (env JAX_NUM_PROCESSES)
  --process-id=I              this process, 0..N-1 (env JAX_PROCESS_ID or the
                              Kubernetes indexed Job's JOB_COMPLETION_INDEX)
  --distributed-timeout=S     seconds to wait for every process to join (default 300)
"""


class DistributedError(ValueError):
    """A bad cluster description, or the cluster could not be joined."""


@dataclasses.dataclass(frozen=True)
class Cluster:
    """Where this process stands in a multi-process training run."""

    coordinator: str
    num_processes: int
    process_id: int
    timeout_s: int = DEFAULT_TIMEOUT_S

    @property
    def primary(self) -> bool:
        """Whether this is process 0 (the one that writes the artefact)."""
        return self.process_id == 0


def split_args(
    argv: list[str], environ: Mapping[str, str] | None = None
) -> tuple[Cluster | None, list[str]]:
    """Take the cluster flags out of ``argv`` and resolve them with the environment.

    Args:
        argv: ``probcast train`` arguments; ``--flag=value`` and ``--flag value`` forms.
        environ: The environment (default ``os.environ``).

    Returns:
        ``(cluster, rest)``: ``cluster`` is ``None`` for a single-process run.

    Raises:
        DistributedError: Naming the flag or variable and what was expected.
    """
    env = os.environ if environ is None else environ
    given: dict[str, tuple[str, str]] = {}  # field -> (source, raw value)
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        name, eq, value = arg.partition("=")
        if name not in FLAGS:
            rest.append(arg)
            continue
        if not eq:
            value = next(args, "")
            if not value or value.startswith("--"):
                raise DistributedError(f"{name} needs a value")
        given[FLAGS[name]] = (name, value)
    for field, names in ENV.items():
        found = next((n for n in names if env.get(n, "").strip()), None)
        if field not in given and found is not None:
            given[field] = (found, env[found].strip())
    if "coordinator" not in given:
        flags = [source for source, _ in given.values() if source.startswith("--")]
        if flags:
            raise DistributedError(f"{flags[0]} needs --coordinator=HOST:PORT")
        return None, rest
    coordinator = _address(*given["coordinator"])
    if "num_processes" not in given:
        raise DistributedError(
            f"{given['coordinator'][0]} is set: give --num-processes=N (or JAX_NUM_PROCESSES)"
        )
    n = _integer(*given["num_processes"], low=1)
    if n == 1:
        return None, rest
    if "process_id" not in given:
        raise DistributedError(
            "give --process-id=I (or JAX_PROCESS_ID, or run as a Kubernetes indexed Job, "
            "which sets JOB_COMPLETION_INDEX)"
        )
    i = _integer(*given["process_id"], low=0)
    if i >= n:
        source = given["process_id"][0]
        raise DistributedError(f"{source}={i} is out of range: expected 0..{n - 1} (N = {n})")
    timeout = _integer(*given.get("timeout_s", ("", str(DEFAULT_TIMEOUT_S))), low=1)
    return Cluster(coordinator, n, i, timeout), rest


def _integer(source: str, value: str, low: int) -> int:
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if number < low:
        raise DistributedError(f"{source}={value!r}: expected an integer >= {low}")
    return number


def _address(source: str, value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DistributedError(f"{source}={value!r}: expected HOST:PORT, e.g. trainer-0:8476")
    return value


def initialize(cluster: Cluster) -> None:
    """Join the cluster (``jax.distributed.initialize``); call before any JAX computation.

    The runtime aborts the process with a native stack trace when the cluster does not
    form in time; a watchdog ends it first, after ``cluster.timeout_s`` seconds, with one
    line saying whether the coordinator was unreachable or some processes did not join
    (exit status 1).
    """
    import jax

    log.info(
        "joining %s as process %d of %d (waiting up to %d s for all)",
        cluster.coordinator,
        cluster.process_id,
        cluster.num_processes,
        cluster.timeout_s,
    )
    watchdog = threading.Timer(cluster.timeout_s, _give_up, args=(cluster,))
    watchdog.daemon = True
    watchdog.start()
    try:
        jax.distributed.initialize(
            coordinator_address=cluster.coordinator,
            num_processes=cluster.num_processes,
            process_id=cluster.process_id,
            initialization_timeout=cluster.timeout_s + GRACE_S,  # the watchdog fires first
            cluster_detection_method="deactivate",
        )
    except Exception as err:  # e.g. the coordinator's port in use; jaxlib's own error types
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DistributedError(f"{_who(cluster)} could not start: {first}") from None
    finally:
        watchdog.cancel()


def _who(cluster: Cluster) -> str:
    return f"process {cluster.process_id} of {cluster.num_processes} ({cluster.coordinator})"


def reachable(address: str, timeout_s: float = 1.0) -> bool:
    """Whether a TCP connection to ``HOST:PORT`` can be opened."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return True
    except OSError:
        return False


def _give_up(cluster: Cluster) -> None:
    if cluster.primary or reachable(cluster.coordinator):
        why = (
            "not every process joined; start all of them with the same --num-processes and "
            "--coordinator, each with its own --process-id"
        )
    else:
        why = (
            "the coordinator is unreachable; check that process 0 runs, that the host "
            "resolves from here and that the port is open"
        )
    sys.stderr.write(
        f"probcast train: error: {_who(cluster)}: the training did not form within "
        f"{cluster.timeout_s} s (--distributed-timeout): {why}\n"
    )
    sys.stderr.flush()
    os._exit(1)  # the runtime's own timeout would abort with a native stack trace


def scratch_dir(workdir: Path, process_id: int) -> Path:
    """Private work directory of process ``process_id > 0``: ``<workdir>.process-<I>``."""
    workdir = Path(workdir)
    return workdir.with_name(f"{workdir.name}.process-{process_id}")


def link_checkpoints(scratch: Path, workdir: Path, n_seeds: int) -> None:
    """Make the checkpoint folders of ``scratch`` links to those of the shared ``workdir``.

    Both the final networks (``seed_<k>``) and those of the selection phase
    (``selection/seed_<k>``) are linked; orbax resolves the links, so every process saves
    into and restores from the same checkpoint directories.
    """
    from probcast.model.artefact import seed_dir

    shared = Path(workdir).resolve()
    for sub in ("", "selection"):
        for k in range(n_seeds):
            local = seed_dir(scratch / sub, k)
            local.mkdir(parents=True, exist_ok=True)
            for series in ("latest", "best"):
                link, target = local / series, seed_dir(shared / sub, k) / series
                if link.is_symlink() and Path(os.readlink(link)) == target:
                    continue
                if link.is_symlink() or link.is_file():
                    link.unlink()
                link.symlink_to(target, target_is_directory=True)


def train(config: Any, workdir: str | Path, cluster: Cluster, config_name: str = "") -> list[Any]:
    """Train as one process of ``cluster`` (after :func:`initialize`); see the module doc.

    Returns:
        The seed results (the same on every process).
    """
    from jax.experimental import multihost_utils

    from probcast.train import loop

    if cluster.primary:
        results = loop.train(config, workdir, config_name)
    else:
        logging.getLogger("probcast").setLevel(logging.WARNING)
        os.environ["PROBCAST_QUIET"] = "1"
        config = config.copy_and_resolve_references()
        config.tracking.backend = "none"
        scratch = scratch_dir(Path(workdir), cluster.process_id)
        link_checkpoints(scratch, Path(workdir), int(config.train.n_seeds))
        results = loop.train(config, scratch, config_name)
    multihost_utils.sync_global_devices("probcast train: artefact written")
    return results


def shutdown() -> None:
    """Leave the cluster (a no-op when :func:`initialize` was not called)."""
    import jax

    jax.distributed.shutdown()
