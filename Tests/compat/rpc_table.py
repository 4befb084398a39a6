"""The RPC x target x pass/fail table printed at the end of a session."""
from __future__ import annotations

import os
import tempfile
from collections import defaultdict


class RPCTable:
    def __init__(self):
        # (rpc, target) -> [passed, failed, failing test names]
        self.cells: dict[tuple[str, str], list] = defaultdict(lambda: [0, 0, []])
        self.targets: list[str] = []

    def record(self, rpcs: list[str], target: str, passed: bool, test: str) -> None:
        if target not in self.targets:
            self.targets.append(target)
        for rpc in rpcs:
            cell = self.cells[(rpc, target)]
            if passed:
                cell[0] += 1
            else:
                cell[1] += 1
                cell[2].append(test)

    def markdown(self) -> str:
        rpcs = sorted({rpc for rpc, _ in self.cells})
        head = "| RPC | " + " | ".join(f"{t} vs etcd" for t in self.targets) + " |"
        rows = [head, "|" + "---|" * (len(self.targets) + 1)]
        for rpc in rpcs:
            cells = []
            for t in self.targets:
                passed, failed, _ = self.cells.get((rpc, t), [0, 0, []])
                if passed + failed == 0:
                    cells.append("–")
                elif failed == 0:
                    cells.append(f"pass ({passed})")
                else:
                    cells.append(f"FAIL ({failed}/{passed + failed})")
            rows.append(f"| {rpc} | " + " | ".join(cells) + " |")
        return "\n".join(rows) + "\n"

    def failures(self) -> str:
        lines = []
        for (rpc, target), (_, failed, tests) in sorted(self.cells.items()):
            if failed:
                lines.append(f"- {rpc} on {target}: {', '.join(sorted(set(tests)))}")
        return "\n".join(lines)

    def write(self) -> str:
        path = os.environ.get("COMPAT_TABLE") or os.path.join(tempfile.gettempdir(),
                                                              "rusd-compat-table.md")
        with open(path, "w") as f:
            f.write("# Compatibility: RPC x target (differential suite)\n\n")
            f.write(self.markdown())
            if self.failures():
                f.write("\nFailing cases:\n" + self.failures() + "\n")
            from normalize import describe
            f.write("\nNormalizations applied before comparing (Tests/compat/normalize.py):\n"
                    + describe() + "\n")
        return path
