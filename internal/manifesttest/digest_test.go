package manifesttest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
)

// testDigest is a well-formed image digest that names no real image.
const testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// TestImageDigest: the chart's image.digest and a kustomize images: override with digest: (as
// docs/install.md shows them) put every nodeping container, agent and controller, on
// REPOSITORY@DIGEST with no tag left, and leave any other image (the standalone node-exporter)
// as it was.
func TestImageDigest(t *testing.T) {
	const repo = "registry.example.org/nodeping"
	want := repo + "@" + testDigest
	cases := []struct {
		name   string
		render func(t *testing.T) []object
	}{
		{"helm defaults", func(t *testing.T) []object {
			// A tag too: the digest wins.
			return helmTemplate(t, nil, "image.repository="+repo, "image.tag=9.9.9", "image.digest="+testDigest)
		}},
		{"helm standalone", func(t *testing.T) []object {
			return helmTemplate(t, []string{"ci/standalone-values.yaml"}, "image.repository="+repo, "image.digest="+testDigest)
		}},
		{"kustomize base", func(t *testing.T) []object {
			return buildWithDigest(t, "manifests/base", repo, testDigest)
		}},
		{"kustomize standalone", func(t *testing.T) []object {
			return buildWithDigest(t, "manifests/overlays/standalone", repo, testDigest)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			imgs := containerImages(t, tc.render(t))
			var ours int
			for c, img := range imgs {
				isOurs := strings.HasPrefix(c, "DaemonSet/nodeping-agent/") || strings.HasPrefix(c, "Deployment/nodeping-controller/")
				switch {
				case isOurs && img != want:
					t.Errorf("%s: image %q, want %q", c, img, want)
				case !isOurs && strings.Contains(img, testDigest):
					t.Errorf("%s: image %q took nodeping's digest", c, img)
				}
				if isOurs {
					ours++
				}
			}
			if ours < 2 {
				t.Errorf("found %d nodeping containers (%v), want the agent's and the controller's", ours, imgs)
			}
		})
	}
}

// buildWithDigest renders dir through an overlay of its own that pins nodeping's image to
// newName@digest, as a user's overlay would.
func buildWithDigest(t *testing.T, dir, newName, digest string) []object {
	t.Helper()
	overlay := t.TempDir()
	abs, err := filepath.Abs(filepath.Join(root, dir))
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(overlay, abs) // kustomize takes no absolute resource paths
	if err != nil {
		t.Fatal(err)
	}
	k := fmt.Sprintf("resources: [%s]\nimages:\n  - name: ghcr.io/nodeping/nodeping\n    newName: %s\n    digest: %s\n", rel, newName, digest)
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	return build(t, overlay)
}

// containerImages maps KIND/NAME/CONTAINER of every container and init container in the pod
// templates of objs to its image.
func containerImages(t *testing.T, objs []object) map[string]string {
	t.Helper()
	imgs := map[string]string{}
	for _, o := range objs {
		switch o.Kind {
		case "DaemonSet", "Deployment", "StatefulSet", "ReplicaSet", "Job":
		default:
			continue
		}
		var w struct {
			Spec struct{ Template v1.PodTemplateSpec } `json:"spec"`
		}
		if err := json.Unmarshal(o.raw, &w); err != nil {
			t.Fatalf("%s %s: %v", o.Kind, o.Name, err)
		}
		for _, c := range append(w.Spec.Template.Spec.InitContainers, w.Spec.Template.Spec.Containers...) {
			imgs[o.Kind+"/"+o.Name+"/"+c.Name] = c.Image
		}
	}
	return imgs
}
