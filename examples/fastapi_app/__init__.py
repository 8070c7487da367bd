"""A FastAPI app that enqueues inside its request's transaction (see examples/README.md)."""
