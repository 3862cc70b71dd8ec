"""The behaviour layer shared by the CLI, the server and the Python API."""
