"""The lab's certificate authority: a fresh self-signed EC P-256 root per run (openssl CLI)."""

import os

from .util import run

CA_SUBJECT = "/CN=gammamesh-lab-ca"


def make_ca(paths):
    """Write <run>/ca/ca.crt and ca.key (mode 0600): CN gammamesh-lab-ca, valid for one day."""
    os.makedirs(paths.ca, mode=0o700, exist_ok=True)
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", paths.ca_key, "-out", paths.ca_cert, "-days", "1",
         "-subj", CA_SUBJECT,
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    os.chmod(paths.ca_key, 0o600)
    os.chmod(paths.ca_cert, 0o644)
