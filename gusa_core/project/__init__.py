"""A GuSA project: the folder of a versioned manifest, RoI masks, caches and runs.

:class:`Project` (:mod:`.project`) is the aggregate; its manifest format lives
in :mod:`.manifest`, its classes in :mod:`.classes`, its masks in
:mod:`.masks`, and reading a folder of images (BACH's layout) in :mod:`.importer`.
"""

from .importer import GROUND_TRUTH_CSV
from .manifest import BACKUP_NAME, FORMAT_NAME, FORMAT_VERSION, MANIFEST_NAME, ImageRecord
from .project import Project, ProjectEvents

__all__ = [
    "Project",
    "ImageRecord",
    "ProjectEvents",
    "MANIFEST_NAME",
    "BACKUP_NAME",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "GROUND_TRUTH_CSV",
]
