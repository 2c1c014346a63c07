// Package ociimage builds container images without a container engine: one layer made from
// files on this machine, a config (entrypoint, user, labels, environment), written as an OCI
// layout directory and as an image archive that `ctr images import` and `docker load` take.
// Builds are reproducible: entries are sorted, owned by root, timestamped at a fixed epoch, and
// carry no extended attributes (so no file capability), so the same inputs give the same digest.
package ociimage

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// File is one regular file of the image's layer.
type File struct {
	Path string // absolute, inside the image
	Mode fs.FileMode
	Data []byte
}

// Spec says what image to build.
type Spec struct {
	Name       string // e.g. ghcr.io/nodeping/nodeping:0.1.0
	Entrypoint []string
	User       string
	Labels     map[string]string
	Env        []string
	Files      []File
	// Epoch timestamps the files and the image (SOURCE_DATE_EPOCH); zero is 1970-01-01.
	Epoch time.Time
}

// Image builds the image that spec describes.
func Image(spec Spec) (v1.Image, error) {
	if _, err := name.NewTag(spec.Name); err != nil {
		return nil, fmt.Errorf("image name %q: %w", spec.Name, err)
	}
	layerTar, err := layerBytes(spec.Files, spec.Epoch)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: spec.Epoch.UTC()}, CreatedBy: "nodeping internal/ociimage"}})
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: spec.Epoch.UTC()}
	cf.Config = v1.Config{Entrypoint: spec.Entrypoint, User: spec.User, Labels: spec.Labels,
		Env: append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, spec.Env...)}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	return img, nil
}

// layerBytes is the layer's tar: the files, the directories that hold them, sorted by path.
func layerBytes(files []File, epoch time.Time) ([]byte, error) {
	dirs := map[string]bool{}
	seen := map[string]bool{}
	for _, f := range files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path {
			return nil, fmt.Errorf("file path %q: want a clean absolute path", f.Path)
		}
		if seen[f.Path] {
			return nil, fmt.Errorf("file %s given twice", f.Path)
		}
		seen[f.Path] = true
		for d := path.Dir(f.Path); d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	type entry struct {
		hdr  *tar.Header
		data []byte
	}
	var entries []entry
	for d := range dirs {
		if seen[d] {
			return nil, fmt.Errorf("%s is both a file and a directory", d)
		}
		entries = append(entries, entry{hdr: &tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755}})
	}
	for _, f := range files {
		entries = append(entries, entry{hdr: &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(f.Path, "/"),
			Mode: int64(f.Mode.Perm()), Size: int64(len(f.Data))}, data: f.Data})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].hdr.Name < entries[j].hdr.Name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		e.hdr.ModTime = epoch.UTC()
		e.hdr.Uname, e.hdr.Gname = "root", "root"
		e.hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(e.hdr); err != nil {
			return nil, fmt.Errorf("layer: %w", err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("layer: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return buf.Bytes(), nil
}

// Write writes img as an image archive at archive (tagged with ref) and as an OCI layout
// directory at dir (replacing what was there), either of them skipped when empty.
func Write(img v1.Image, ref, archive, dir string) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image name %q: %w", ref, err)
	}
	if archive != "" {
		tmp := archive + ".tmp"
		if err := tarball.WriteToFile(tmp, tag, img); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("write %s: %w", archive, err)
		}
		if err := os.Rename(tmp, archive); err != nil {
			return fmt.Errorf("write %s: %w", archive, err)
		}
	}
	if dir != "" {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("write %s: %w", dir, err)
		}
		p, err := layout.Write(dir, empty.Index)
		if err != nil {
			return fmt.Errorf("write %s: %w", dir, err)
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
			"org.opencontainers.image.ref.name": tag.TagStr(), "io.containerd.image.name": tag.Name()})); err != nil {
			return fmt.Errorf("write %s: %w", dir, err)
		}
	}
	return nil
}

// BaseFiles are the files of a minimal base, as distroless/static has them: /etc/passwd and
// /etc/group with root, nobody (65534) and nonroot (65532), the CA certificates and the time
// zone database, read from this machine under root (normally "/").
func BaseFiles(root string) ([]File, error) {
	files := []File{
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/sbin/nologin\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
			"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{Path: "/etc/group", Mode: 0o644, Data: []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")},
	}
	certs, err := os.ReadFile(filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"))
	if err != nil {
		return nil, fmt.Errorf("CA certificates (Debian's ca-certificates): %w", err)
	}
	files = append(files, File{Path: "/etc/ssl/certs/ca-certificates.crt", Mode: 0o644, Data: certs})
	zoneinfo := filepath.Join(root, "usr/share/zoneinfo")
	err = filepath.WalkDir(zoneinfo, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() { // directories come with their files; links are skipped
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		files = append(files, File{Path: "/" + filepath.ToSlash(rel), Mode: 0o644, Data: b})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("time zone database (Debian's tzdata): %w", err)
	}
	return files, nil
}

// HostFile reads a file of this machine into the image at dst, with mode perm.
func HostFile(src, dst string, perm fs.FileMode) (File, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return File{}, err
	}
	if len(b) == 0 {
		return File{}, errors.New(src + " is empty")
	}
	return File{Path: dst, Mode: perm, Data: b}, nil
}
