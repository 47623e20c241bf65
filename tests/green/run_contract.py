"""Run the contract suite (tests/contract) under one green flavour, in this process.

Usage: ``python run_contract.py FLAVOUR [pytest args...]`` with FLAVOUR one of
``gevent-patched``, ``eventlet-patched`` (monkey-patched first), ``gevent``, ``eventlet``
(green backends without monkey-patching). Patching cannot be undone, hence a process each.
"""

from __future__ import annotations

import os
import sys
import warnings

FLAVOURS = ("gevent-patched", "eventlet-patched", "gevent", "eventlet")


def main() -> int:
    flavour, extra = sys.argv[1], sys.argv[2:]
    if flavour not in FLAVOURS:
        raise SystemExit(f"unknown flavour {flavour!r}; one of {FLAVOURS}")
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # eventlet's own
    if flavour == "gevent-patched":
        from gevent import monkey

        monkey.patch_all()
    elif flavour == "eventlet-patched":
        import eventlet

        eventlet.monkey_patch()
    os.environ["DBAPI_POOL_CONTRACT_FLAVOUR"] = flavour
    import pytest

    contract = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "contract")
    return int(pytest.main([contract, "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *extra]))


if __name__ == "__main__":
    sys.exit(main())
