"""Only where a build writes its scratch files: everything else is in pyproject.toml.

setuptools puts build/ and <name>.egg-info in the source tree by default, so `pip install .`
would leave them in a checkout. Here they go to a temporary directory, removed when the build
ends.
"""

import atexit
import shutil
import tempfile

from setuptools import setup

scratch = tempfile.mkdtemp(prefix="rt-mp-collector-build-")
atexit.register(shutil.rmtree, scratch, ignore_errors=True)
setup(options={"build": {"build_base": f"{scratch}/build"}, "egg_info": {"egg_base": scratch}})
