"""Upstream sources that no registry reachable here serves (Strimzi, the MinIO operator, Kafdrop, skaffold).

They sit in `../shared/vendor/` beside the repository (its README says what each is), or wherever
STOCKPIPE_VENDOR_DIR points. Only the development tooling reads them, to build what a user downloads.
"""

from __future__ import annotations

import os
from pathlib import Path

from stockpipe_dev.localservices.imagebuild import repo_root
from stockpipe_dev.localservices.process import ServiceError


def vendor_dir() -> Path:
    configured = os.environ.get("STOCKPIPE_VENDOR_DIR")
    return Path(configured) if configured else repo_root().parent / "shared" / "vendor"


def vendored(name: str) -> Path:
    """The vendored file `name`; ServiceError naming the setting when it is not there."""
    path = vendor_dir() / name
    if not path.is_file():
        raise ServiceError(
            f"{path} is missing: set STOCKPIPE_VENDOR_DIR to the folder holding {name} "
            "(with internet, install the upstream release instead)"
        )
    return path
