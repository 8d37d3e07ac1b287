// The pod sandbox's process (what registry.k8s.io/pause does), as no image can be pulled here.
module stockpipe.local/pause

go 1.24.0
