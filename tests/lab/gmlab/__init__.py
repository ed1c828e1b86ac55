"""gmlab: the gammamesh lab.

Turns Kubernetes manifests into a small multi-node "cluster" made of Linux network namespaces on
one machine and runs the real gammamesh daemons in it. See DESIGN.md section 10 and
tests/lab/README.md. Standard library only (Debian's /usr/bin/python3).
"""
