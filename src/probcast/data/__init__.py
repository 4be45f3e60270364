"""Dataset registry, download with checksum verification, and benchmark preparation."""
