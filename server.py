"""Start facesvc: malloc arenas capped (facesvc.allocator), settings from FACESVC_* -> engine(s) -> gRPC and HTTP (facesvc.serve) -> serve until SIGTERM."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from facesvc import allocator, logs
from facesvc.config import Settings
from facesvc.engine.templates import KeyRing
from facesvc.serve import run


def main() -> int:
    allocator.cap_arenas()  # before the servers' threads take arenas of their own
    try:
        settings = Settings()
        if settings.template_keys_file is not None:
            KeyRing.load(settings.template_keys_file)  # its permissions and every line, before serving
    except (ValidationError, ValueError) as error:
        print(f"facesvc: invalid configuration:\n{error}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
