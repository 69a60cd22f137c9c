"""Coverage-guided fuzz targets for every parser fed by the network (run with `python -m fuzz`)."""
