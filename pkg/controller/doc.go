// Package controller publishes the cluster's nodes as a nodes list in a ConfigMap that every agent
// mounts: one watch on Nodes for the whole cluster, and a write only when the list really changes.
package controller
