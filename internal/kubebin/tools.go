//go:build tools

// Package kubebin pins the commands scripts/kube-build builds for scripts/kube-up and
// scripts/cluster-up; nothing imports it.
package kubebin

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
