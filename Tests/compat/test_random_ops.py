"""Seeded random operation sequences against both servers, every answer compared.

COMPAT_OPS (default 10000) operations per target; COMPAT_RANDOM_KINDS restricts the kinds
(comma separated among put,delete,range,txn,compact,watch,lease; default all); COMPAT_SEED fixes the seed (else a random
one, printed); COMPAT_SHRINK_SECONDS (default 120) bounds the shrinking of a failing
sequence; COMPAT_REPLAY=file.json replays a saved sequence instead of generating one.
"""
import json
import os
import random
import tempfile
import time

import pytest

import random_ops
from differential import Difference

OPS = int(os.environ.get("COMPAT_OPS", "10000"))
SHRINK_SECONDS = float(os.environ.get("COMPAT_SHRINK_SECONDS", "120"))
KINDS = tuple(k for k in os.environ.get("COMPAT_RANDOM_KINDS", ",".join(random_ops.KINDS))
              .split(",") if k)


def shrink(pair_manager, ops: list[dict]) -> tuple[list[dict], str]:
    """Delta debugging over the op list, each try replayed on freshly started servers."""
    last_diff = ""
    kind = ops[-1]["rpc"]

    def fails(candidate):
        """Replays on fresh servers; true if it ends in a difference on the same RPC."""
        nonlocal last_diff
        pair_manager.restart()
        result = random_ops.replay(pair_manager.pair, candidate)
        if result and candidate[result[0]]["rpc"] == kind:
            last_diff = result[1]
            return True
        return False

    if not fails(ops):
        return ops, ""        # does not reproduce on fresh servers: timing-dependent
    deadline = time.monotonic() + SHRINK_SECONDS
    # Reads change no state: dropping all but the last op's is one cheap first step.
    without_reads = [op for op in ops[:-1] if op["rpc"] not in random_ops.READ_ONLY] + ops[-1:]
    if len(without_reads) < len(ops) and fails(without_reads):
        ops = without_reads
    small = random_ops.ddmin(ops, fails, deadline)
    fails(small)              # leaves last_diff describing the shrunk sequence
    return small, last_diff


@pytest.mark.fresh
@pytest.mark.rpc("random ops")
def test_random_operations(pair, pair_manager, target):
    replay_path = os.environ.get("COMPAT_REPLAY")
    seed = int(os.environ.get("COMPAT_SEED") or random.SystemRandom().randrange(2**32))
    ops: list[dict] = []
    started = time.monotonic()
    try:
        if replay_path:
            ops = json.load(open(replay_path))
            result = random_ops.replay(pair, ops)
            if result:
                raise Difference(result[1])
        else:
            random_ops.run_sequence(pair, seed, OPS, ops, KINDS)
    except Difference as first:
        failing = ops[:]  # ends with the op that differed
        small, diff = shrink(pair_manager, failing)
        path = os.path.join(tempfile.gettempdir(), f"rusd-compat-repro-{seed}-{target}.json")
        with open(path, "w") as f:
            json.dump(small, f, indent=1)
        shown = random_ops.dumps(small)
        pytest.fail(f"random ops differ (seed {seed}, op {len(failing)} of {OPS}, {target}; rerun: "
                    f"COMPAT_SEED={seed} COMPAT_RANDOM_KINDS={','.join(KINDS)}).\n"
                    f"Shrunk to {len(small)} ops, saved to {path} "
                    f"(replay: COMPAT_REPLAY={path} COMPAT_TARGETS={target} pytest "
                    f"Tests/compat/test_random_ops.py)\n"
                    f"{shown[:4000]}\n\nfirst difference:\n{diff or first}", pytrace=False)
    elapsed = time.monotonic() - started
    print(f"\nrandom ops: seed {seed}, {len(ops)} ops ({','.join(KINDS)}) on {target} vs etcd "
          f"in {elapsed:.1f}s")
