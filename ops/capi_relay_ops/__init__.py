"""Operator commands (`capi-relay ...`): installed by make install, never deployed."""
