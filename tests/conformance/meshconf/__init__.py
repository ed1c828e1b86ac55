"""The Gateway API mesh conformance suite (MESH-HTTP profile and the other mesh HTTP tests),
run on the lab with the project's echo server and client. See tests/conformance/README.md."""
