package controller

import (
	"reflect"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SlimNode is the Node informer's transform: it keeps what the nodes list is made of (name,
// labels, taints, unschedulable, addresses, condition types and statuses) and drops the rest
// (images, managedFields, annotations, capacity, heartbeat times, messages), so the cache costs
// about a tenth of whole Nodes. Objects that are not Nodes pass through unchanged.
func SlimNode(obj any) (any, error) {
	n, ok := obj.(*v1.Node)
	if !ok {
		return obj, nil
	}
	out := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion,
			Labels: n.Labels, DeletionTimestamp: n.DeletionTimestamp,
		},
		Spec: v1.NodeSpec{Unschedulable: n.Spec.Unschedulable, Taints: n.Spec.Taints},
		Status: v1.NodeStatus{
			Addresses:  n.Status.Addresses,
			Conditions: make([]v1.NodeCondition, 0, len(n.Status.Conditions)),
		},
	}
	for _, c := range n.Status.Conditions {
		out.Status.Conditions = append(out.Status.Conditions, v1.NodeCondition{Type: c.Type, Status: c.Status})
	}
	return out, nil
}

// listChanges says whether a Node update can change the nodes list: it compares what Render makes
// of the old and the new object, so heartbeats and status churn cost no render of the whole list.
func listChanges(old, cur any) bool {
	o, ok1 := old.(*v1.Node)
	n, ok2 := cur.(*v1.Node)
	if !ok1 || !ok2 {
		return true
	}
	lo, so := Render([]*v1.Node{o})
	ln, sn := Render([]*v1.Node{n})
	return !reflect.DeepEqual(lo, ln) || !reflect.DeepEqual(so, sn)
}
