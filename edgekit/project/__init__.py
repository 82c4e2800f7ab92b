"""The project stage: `edgekit.toml` drives export, quantize, compile and check into one build folder.

    project_file.py  edgekit.toml, read and validated before any stage runs
    pipeline.py      every stage in order into the build folder
    build_folder.py  the build folder's layout and its build.json record
    build_check.py   the project's gates on its build's artifacts
    baselines.py     a good build's gate values and golden outputs
"""

from edgekit.project.build_folder import BUILD_JSON, CHECK_JSON, FORMAT, FORMAT_VERSION, data_sha256
from edgekit.project.project_file import Project, load_project

__all__ = ["BUILD_JSON", "CHECK_JSON", "FORMAT", "FORMAT_VERSION", "Project", "data_sha256", "load_project"]
