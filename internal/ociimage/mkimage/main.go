// Command mkimage builds one image with internal/ociimage, for scripts/image:
//
//	mkimage -name REF -archive OUT.tar -layout OUT.oci -entrypoint /bin/x -user 65532:65532 \
//	  [-base] [-label k=v]... [-file SRC=DST[:MODE]]...
//
// It prints the image's digest.
package main

import (
	"flag"
	"fmt"
	iofs "io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nodeping/nodeping/internal/ociimage"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, " ") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	spec := ociimage.Spec{Labels: map[string]string{}}
	fs.StringVar(&spec.Name, "name", "", "image reference, e.g. ghcr.io/nodeping/nodeping:0.1.0")
	archive := fs.String("archive", "", "write an image archive (ctr images import, docker load) here")
	dir := fs.String("layout", "", "write an OCI layout directory here")
	entrypoint := fs.String("entrypoint", "", "entrypoint, space-separated")
	fs.StringVar(&spec.User, "user", "", "user[:group]")
	base := fs.Bool("base", false, "add the minimal base: passwd, group, CA certificates, tzdata")
	var labels, files multi
	fs.Var(&labels, "label", "KEY=VALUE (repeatable)")
	fs.Var(&files, "file", "SRC=DST[:MODE], MODE octal, default 0755 (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if spec.Name == "" || (*archive == "" && *dir == "") {
		return fmt.Errorf("-name and one of -archive, -layout are required")
	}
	spec.Entrypoint = strings.Fields(*entrypoint)
	if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
		sec, err := strconv.ParseInt(e, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", e, err)
		}
		spec.Epoch = time.Unix(sec, 0)
	} else {
		spec.Epoch = time.Unix(0, 0)
	}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return fmt.Errorf("-label %q: want KEY=VALUE", l)
		}
		spec.Labels[k] = v
	}
	if *base {
		b, err := ociimage.BaseFiles("/")
		if err != nil {
			return err
		}
		spec.Files = append(spec.Files, b...)
	}
	for _, f := range files {
		src, dst, ok := strings.Cut(f, "=")
		if !ok {
			return fmt.Errorf("-file %q: want SRC=DST[:MODE]", f)
		}
		mode := iofs.FileMode(0o755)
		if d, m, ok := strings.Cut(dst, ":"); ok {
			v, err := strconv.ParseUint(m, 8, 32)
			if err != nil {
				return fmt.Errorf("-file %q: mode: %w", f, err)
			}
			dst, mode = d, iofs.FileMode(v)
		}
		hf, err := ociimage.HostFile(src, dst, mode)
		if err != nil {
			return err
		}
		spec.Files = append(spec.Files, hf)
	}
	img, err := ociimage.Image(spec)
	if err != nil {
		return err
	}
	if err := ociimage.Write(img, spec.Name, *archive, *dir); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Println(d)
	return nil
}
