"""Voice previews: synthesise a sample sentence in a catalog voice, cached on disk."""
