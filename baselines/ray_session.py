"""The one place a Ray session is started, joined and ended (the RLlib backend and ``suite`` sweeps).

:func:`connect_ray` starts a local instance with the CPUs asked for, or joins the cluster at
``address``, and says whether the caller owns the session (and so must end it with
``ray.shutdown()``). A wrong address fails in seconds with a one-line ``ConfigError``.

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

__all__ = ["connect_ray"]


class _NewStackNotice(logging.Filter):
    """Drops RLlib's notice, on every run, that PPO runs on the new API stack: we chose it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "on the new API stack" not in record.getMessage()


logging.getLogger("ray.rllib.algorithms.algorithm_config").addFilter(_NewStackNotice())
warnings.filterwarnings("ignore", message=".*Overriding environment rllib-(single|multi)-agent-env-v0",
                        category=UserWarning)


def connect_ray(address: str | None, num_cpus: int) -> bool:
    """Start or connect to Ray; return True when this call did (so it should shut it down).

    ``address`` None starts a local instance with ``num_cpus``; otherwise it is checked to be
    reachable first, so a wrong address fails in seconds with a one-line ``ConfigError``.
    """
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR,
                              "log_to_driver": False, "configure_logging": True}
    if address is None:
        ray.init(num_cpus=num_cpus, **kwargs)
        return True
    if address not in ("auto", "local") and not address.startswith("ray://"):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"--address expects HOST:PORT of a running Ray head (or 'auto'), got {address!r}")
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as error:
            raise ConfigError(f"cannot reach a Ray cluster at --address {address!r}: "
                              f"{error.strerror or error}; start one with `ray start --head` or drop --address"
                              ) from None
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError) as error:
        raise ConfigError(f"cannot connect to a Ray cluster at --address {address!r}: "
                          f"{str(error).splitlines()[0]}") from None
    return True
