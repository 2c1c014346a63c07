//go:build tools

// Package kubebin pins the commands scripts/kube-up builds; nothing imports it.
package kubebin

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
