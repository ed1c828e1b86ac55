"""The config directory every daemon watches: one YAML file per object.

File names are `<kind>-<namespace>-<name>.yaml` (lower-case kind; `<kind>-<name>.yaml` for
cluster-scoped kinds). Files are replaced atomically (temporary file in the same directory,
then rename) and only when their content changes, so daemons see no spurious events.
"""

import os

from . import yamlish
from .util import read_text, remove_file, write_atomic


def file_name(kind, ns, name):
    parts = [kind.lower()] + ([ns] if ns else []) + [name]
    return "-".join(parts) + ".yaml"


def sync(config_dir, objects):
    """Make config_dir hold exactly `objects` ({file name: object}); returns (written, removed)."""
    written, removed = [], []
    for fname, obj in sorted(objects.items()):
        path = os.path.join(config_dir, fname)
        text = yamlish.dump(obj)
        if read_text(path) != text:
            write_atomic(path, text)
            written.append(fname)
    for fname in sorted(os.listdir(config_dir)):
        if fname.endswith(".yaml") and fname not in objects:
            remove_file(os.path.join(config_dir, fname))
            removed.append(fname)
    return written, removed
