"""The pure core: no I/O library is imported here; time and ids are arguments."""
