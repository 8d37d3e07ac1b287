"""A local Kubernetes cluster built from source: `stockpipe cluster up|down|status`."""
