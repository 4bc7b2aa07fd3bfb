"""The one place a Ray session is started, joined and ended (the RLlib backend and ``suite`` sweeps).

:func:`connect_ray` starts a private local instance with the CPUs asked for, beside any other Ray
on the machine (a ``ray start --head`` cluster, another user's runs), or joins the cluster at
``address`` (``auto``: the one ``ray start`` started here), and says whether the caller owns the
session (and so must end it with ``ray.shutdown()``). A wrong address fails in seconds with a
one-line ``ConfigError``.

Importing this module also quietens two RLlib messages every run would otherwise print: the notice
that PPO runs on the new API stack (the suite chose it) and the warning that RLlib re-registers its
env id each time an algorithm is built in a process.
"""

from __future__ import annotations

import logging
import os
import socket
import warnings
from typing import Any

from envs.config import ConfigError

__all__ = ["connect_ray", "speaks_grpc"]


class _NewStackNotice(logging.Filter):
    """Drops RLlib's notice, on every run, that PPO runs on the new API stack: we chose it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "on the new API stack" not in record.getMessage()


logging.getLogger("ray.rllib.algorithms.algorithm_config").addFilter(_NewStackNotice())
warnings.filterwarnings("ignore", message=".*Overriding environment rllib-(single|multi)-agent-env-v0",
                        category=UserWarning)


#: HTTP/2's client connection preface and an empty SETTINGS frame: a gRPC server (Ray's GCS is one)
#: answers with a SETTINGS frame of its own; anything else (a web server, a database) does not.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_SETTINGS_FRAME = 0x04


def speaks_grpc(host: str, port: int, timeout: float = 5.0) -> bool:
    """Whether ``host:port`` answers HTTP/2 (gRPC) within ``timeout`` seconds, as a Ray head's GCS does.

    ``ray.init`` at an address that is not Ray retries for over a minute and ignores Ctrl-C; this
    answers in milliseconds.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            connection.settimeout(timeout)
            connection.sendall(_H2_PREFACE)
            header = b""
            while len(header) < 9:
                chunk = connection.recv(9 - len(header))
                if not chunk:
                    return False
                header += chunk
    except OSError:
        return False
    return header[3] == _SETTINGS_FRAME


def _parse(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--address expects HOST:PORT of a running Ray head (or 'auto'), got {address!r}")
    return host, int(port)


def connect_ray(address: str | None, num_cpus: int) -> bool:
    """Start or connect to Ray; return True when this call did (so it should shut it down).

    ``address`` None joins the cluster of ``RAY_ADDRESS`` when that is set (as inside ``ray job
    submit``; ``num_cpus`` is then the cluster's business), else starts a private local instance
    with ``num_cpus`` (``ray.init(address="local")``), whatever other Ray runs on the machine: a
    bare ``ray.init()`` would join the cluster a ``ray start --head`` left in
    ``/tmp/ray/ray_current_cluster``, and refuse ``num_cpus`` there. ``"local"`` does the same
    explicitly; ``"auto"`` joins the Ray already running here (``RAY_ADDRESS``, else the one ``ray
    start`` started); ``HOST:PORT`` (or ``ray://...``) joins that cluster. An address is checked
    first (reachable, and answering as a Ray head does), so a wrong one fails in seconds with a
    one-line ``ConfigError``.
    """
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR,
                              "log_to_driver": False, "configure_logging": True}
    source = "--address"
    if address is None and os.environ.get("RAY_ADDRESS"):  # e.g. inside `ray job submit`: the job's cluster
        address, source = os.environ["RAY_ADDRESS"], "RAY_ADDRESS"
    if address is None or address == "local":  # a private instance, never another Ray found on the machine
        ray.init(address="local", num_cpus=num_cpus, **kwargs)
        return True
    if address != "auto" and not address.startswith("ray://"):
        host, port = _parse(address)
        try:
            socket.create_connection((host, port), timeout=5).close()
        except OSError as error:
            raise ConfigError(f"cannot reach a Ray cluster at {source} {address!r}: {error.strerror or error}; "
                              f"start one with `ray start --head` or drop {source}") from None
        if not speaks_grpc(host, port):
            raise ConfigError(f"{source} {address!r} answers, but not as a Ray head (no gRPC there); give the "
                              "address `ray start --head` printed (port 6379 by default)")
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as error:
        hint = "" if os.environ.get("RAY_AUTH_MODE") == "token" else \
            " (a cluster started with RAY_AUTH_MODE=token also wants RAY_AUTH_MODE=token and its token here)"
        raise ConfigError(f"cannot connect to a Ray cluster at {source} {address!r}: "
                          f"{str(error).splitlines()[0]}{hint}") from None
    except Exception as error:  # e.g. ray.exceptions.AuthenticationError: a token-authenticated cluster
        if type(error).__name__ != "AuthenticationError":
            raise
        raise ConfigError(f"the Ray cluster at {address!r} wants a token: set RAY_AUTH_MODE=token and the "
                          "cluster's token (RAY_AUTH_TOKEN, or the file ~/.ray/auth_token that "
                          "`ray get-auth-token` shows) in this shell") from None
    return True
