"""One converter module per benchmark dataset (registered with ``probcast.data.prepare``)."""
