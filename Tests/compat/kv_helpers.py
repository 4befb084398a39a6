"""Small helpers shared by the scripted cases."""
from __future__ import annotations


def prefix_end(prefix: str | bytes) -> bytes:
    """etcd's range_end for "every key with this prefix" (clientv3.GetPrefixRangeEnd)."""
    b = bytearray(prefix.encode() if isinstance(prefix, str) else prefix)
    for i in range(len(b) - 1, -1, -1):
        if b[i] < 0xFF:
            b[i] += 1
            return bytes(b[: i + 1])
    return b"\0"


def put_all(pair, ns: str, items: dict | list) -> int:
    """Puts ns+key=value on both servers (compared); returns the last revision."""
    rev = 0
    pairs = items.items() if isinstance(items, dict) else items
    for k, v in pairs:
        rev = pair.call("KV.Put", key=ns + k, value=v).ok["header"]["revision"]
    return rev


def revision(pair) -> int:
    return pair.call("KV.Range", key=b"\0", count_only=True).ok["header"]["revision"]
