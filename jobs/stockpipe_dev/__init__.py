"""stockpipe's development tooling, apart from the product: local services and protocol stand-ins
(`localservices`), the local Kubernetes cluster and image builds (`localservices.kube`,
`localservices.imagebuild`), benchmarks and chaos (`bench`), and the demo.

The product (`stockpipe`) never imports this package (an import-linter contract); its commands reach
the `stockpipe` CLI through the `stockpipe.cli` entry-point group.
"""
