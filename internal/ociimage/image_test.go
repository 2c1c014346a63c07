package ociimage_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/nodeping/nodeping/internal/ociimage"
)

// TestScriptImage builds the images as scripts/image does, twice, and reads them back.
func TestScriptImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	if _, err := os.Stat("/usr/bin/prometheus-node-exporter"); err != nil {
		t.Skip("needs Debian's prometheus-node-exporter (scripts/deps installs it)")
	}
	out := t.TempDir()
	digests := func(dir string) map[string]string {
		cmd := exec.Command("../../scripts/image", "--all", dir)
		cmd.Stderr = os.Stderr
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("scripts/image --all: %v", err)
		}
		m := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			path, d, ok := strings.Cut(line, "\t")
			if !ok {
				t.Fatalf("scripts/image printed %q, want PATH<TAB>DIGEST", line)
			}
			m[filepath.Base(path)] = d
		}
		return m
	}
	first, second := digests(out), digests(filepath.Join(out, "again"))
	for _, n := range []string{"nodeping.tar", "node-exporter.tar", "pause.tar"} {
		if first[n] == "" || first[n] != second[n] {
			t.Errorf("%s: digests %q and %q from the same sources, want one", n, first[n], second[n])
		}
	}

	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	wantUser := regexp.MustCompile(`(?m)^USER (\S+)$`).FindSubmatch(df)
	wantEntry := regexp.MustCompile(`(?m)^ENTRYPOINT \["(\S+)"\]$`).FindSubmatch(df)
	wantLabels := regexp.MustCompile(`(\S+)="([^"]*)"`).FindAllSubmatch(regexp.MustCompile(`(?m)^LABEL .*$`).Find(df), -1)
	if wantUser == nil || wantEntry == nil || len(wantLabels) == 0 {
		t.Fatal("the Dockerfile has no USER, ENTRYPOINT or LABEL line")
	}
	tests := []struct {
		archive, ref, user, entry string
		files                     []string
	}{
		{"nodeping.tar", "ghcr.io/nodeping/nodeping:0.1.0", string(wantUser[1]), string(wantEntry[1]),
			[]string{"usr/local/bin/nodeping-agent", "usr/local/bin/nodeping-controller", "etc/passwd", "etc/group",
				"etc/ssl/certs/ca-certificates.crt", "usr/share/zoneinfo/Europe/Berlin", "licenses/LICENSE"}},
		{"node-exporter.tar", "quay.io/prometheus/node-exporter:v1.8.2", "65534:65534", "/bin/node_exporter",
			[]string{"bin/node_exporter", "etc/passwd"}},
		{"pause.tar", "registry.k8s.io/pause:3.10", "65535:65535", "/pause", []string{"pause"}},
	}
	for _, tt := range tests {
		t.Run(tt.archive, func(t *testing.T) {
			path := filepath.Join(out, tt.archive)
			img, err := tarball.ImageFromPath(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if refs := archiveRefs(t, path); len(refs) != 1 || refs[0] != tt.ref {
				t.Errorf("archive names %q, want [%s]", refs, tt.ref)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.Config.User != tt.user || strings.Join(cf.Config.Entrypoint, " ") != tt.entry {
				t.Errorf("user %q entrypoint %q, want %q %q", cf.Config.User, cf.Config.Entrypoint, tt.user, tt.entry)
			}
			if cf.OS != "linux" || cf.Architecture != "amd64" {
				t.Errorf("platform %s/%s, want linux/amd64", cf.OS, cf.Architecture)
			}
			if tt.archive == "nodeping.tar" {
				for _, l := range wantLabels {
					if got := cf.Config.Labels[string(l[1])]; got != string(l[2]) {
						t.Errorf("label %s = %q, want the Dockerfile's %q", l[1], got, l[2])
					}
				}
			}
			files := layerFiles(t, img)
			for _, f := range tt.files {
				if _, ok := files[f]; !ok {
					t.Errorf("no /%s in the image", f)
				}
			}
			if p, ok := files["etc/passwd"]; ok && !strings.Contains(string(p), "nonroot:x:65532:65532:") {
				t.Errorf("/etc/passwd has no nonroot user: %q", p)
			}
			// The layout directory holds the same image.
			lp, err := layout.FromPath(strings.TrimSuffix(path, ".tar") + ".oci")
			if err != nil {
				t.Fatal(err)
			}
			idx, err := lp.ImageIndex()
			if err != nil {
				t.Fatal(err)
			}
			im, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			d, _ := img.Digest()
			if len(im.Manifests) != 1 || im.Manifests[0].Digest != d || im.Manifests[0].Annotations["io.containerd.image.name"] != tt.ref {
				t.Errorf("layout index %+v, want one manifest %s named %s", im.Manifests, d, tt.ref)
			}
		})
	}
	t.Run("containerd import", func(t *testing.T) { containerdImport(t, filepath.Join(out, "nodeping.tar")) })
}

func archiveRefs(t *testing.T, path string) []string {
	t.Helper()
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, d := range m {
		refs = append(refs, d.RepoTags...)
	}
	return refs
}

// layerFiles returns the image's regular files by path, and fails on any extended attribute:
// a file capability (security.capability) is one.
func layerFiles(t *testing.T, img v1.Image) map[string][]byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for k := range h.PAXRecords {
				if strings.HasPrefix(k, "SCHILY.xattr.") {
					t.Errorf("%s carries %s", h.Name, k)
				}
			}
			if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(time.Unix(0, 0)) {
				t.Errorf("%s: owner %d:%d, time %s; want root and the epoch", h.Name, h.Uid, h.Gid, h.ModTime)
			}
			if h.Typeflag == tar.TypeReg {
				b, _ := io.ReadAll(tr)
				files[h.Name] = b
			}
		}
		rc.Close()
	}
	return files
}

// containerdImport imports the archive into a private containerd, as scripts/cluster-up does.
func containerdImport(t *testing.T, archive string) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run containerd")
	}
	for _, b := range []string{"containerd", "ctr"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed (scripts/deps installs containerd)", b)
		}
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "containerd.sock")
	cfg := filepath.Join(dir, "config.toml")
	conf := "version = 2\nroot = \"" + dir + "/root\"\nstate = \"" + dir + "/state\"\n" +
		"disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.internal.v1.opt\"]\n[grpc]\n  address = \"" + sock + "\"\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cmd := exec.Command("containerd", "--config", cfg)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ctr := func(args ...string) string {
		for {
			out, err := exec.CommandContext(ctx, "ctr", append([]string{"--address", sock, "-n", "k8s.io"}, args...)...).CombinedOutput()
			if err == nil {
				return string(out)
			}
			if ctx.Err() != nil {
				t.Fatalf("ctr %s: %v: %s (containerd: %s)", args, err, out, log.String())
			}
			time.Sleep(100 * time.Millisecond) // containerd still starting: retry until the deadline
		}
	}
	ctr("images", "import", archive)
	if out := ctr("images", "ls", "-q"); !strings.Contains(out, "ghcr.io/nodeping/nodeping:0.1.0") {
		t.Errorf("containerd lists %q after the import, want ghcr.io/nodeping/nodeping:0.1.0", out)
	}
}

func TestLayerRejectsBadPaths(t *testing.T) {
	for _, p := range []string{"relative", "/a/../b", "/a/"} {
		_, err := ociimage.Image(ociimage.Spec{Name: "x/y:1", Files: []ociimage.File{{Path: p, Mode: 0o644}}})
		if err == nil {
			t.Errorf("path %q accepted, want an error", p)
		}
	}
	_, err := ociimage.Image(ociimage.Spec{Name: "x/y:1", Files: []ociimage.File{{Path: "/a", Mode: 0o644}, {Path: "/a/b", Mode: 0o644}}})
	if err == nil {
		t.Error("/a as a file and a directory accepted, want an error")
	}
}
