"""`python -m bench.floors`: what the libraries cost on this machine, below any facesvc
code (the floors under the two targets `make bench` misses; see bench.bench.floors)."""

from __future__ import annotations

import sys

from bench.bench import floors


def main() -> int:
    print("| floor | median ms |\n|---|---|")
    for name, ms in floors():
        print(f"| {name} | {ms:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
