"""Development tools (Graph stand-in, local stack, demo): installed, never deployed."""
