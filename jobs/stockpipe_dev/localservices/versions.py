"""Pinned versions of the local services and tools (one place)."""

KAFKA_VERSION = "4.1.1"
# MinIO publishes no semver tags; this pseudo-version is the RELEASE of 2026-02-12 as the Go proxy serves it.
MINIO_MODULE = "github.com/minio/minio"
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
HELM_MODULE = "helm.sh/helm/v3/cmd/helm"
HELM_VERSION = "v3.19.0"
# What helm's release build stamps in (`go install` leaves it out): its version, and the Kubernetes version
# `helm template` assumes without a cluster (its client-go's, 1.34; unstamped it is 1.20, which the
# chart's kubeVersion refuses).
HELM_LDFLAGS = (
    f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION} "
    "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=34"
)
KUBECONFORM_MODULE = "github.com/yannh/kubeconform/cmd/kubeconform"
KUBECONFORM_VERSION = "v0.7.0"
# The chart's README (charts/stockpipe/README.md) is generated from the values' comments.
HELM_DOCS_MODULE = "github.com/norwoodj/helm-docs/cmd/helm-docs"
HELM_DOCS_VERSION = "v1.14.2"
KCAT_DEBIAN_PACKAGE = "kcat"
TOXIPROXY_MODULE = "github.com/Shopify/toxiproxy/v2/cmd/server"
TOXIPROXY_VERSION = "v2.5.0"
# The local cluster's DNS (Services, headless Services with per-pod records, pod records), from the Go proxy.
COREDNS_MODULE = "github.com/coredns/coredns"
COREDNS_VERSION = "v1.15.0"
