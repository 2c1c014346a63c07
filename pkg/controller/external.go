package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/nodeping/nodeping/pkg/nodelist"
)

// LoadExternal reads external targets from a file in any format nodelist.Decode reads that can
// carry them, usually {"external_targets":[{"name":"dns","host":"192.0.2.53"}]}. A file that does
// not exist holds none: the ConfigMap it is mounted from is optional. Nodes in the file are an
// error, not a silent skip: the controller alone lists nodes.
func LoadExternal(path string) ([]nodelist.External, error) {
	data, err := os.ReadFile(path)
	return decodeExternal(path, data, err)
}

// decodeExternal is LoadExternal on what a read of path gave: data and its error.
func decodeExternal(path string, data []byte, err error) ([]nodelist.External, error) {
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read external targets: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	l, skips, err := nodelist.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("external targets %s: %w", path, err)
	}
	if len(l.Nodes) > 0 {
		return nil, fmt.Errorf("external targets %s: holds %d nodes; only external_targets belong there", path, len(l.Nodes))
	}
	if len(skips) > 0 {
		return nil, fmt.Errorf("external targets %s: %s", path, skips[0])
	}
	return l.External, nil
}

// LimitExternal applies the external targets' limits before they go into the nodes list: a
// target whose host is an address that nodelist.RefusedTarget refuses (loopback, unspecified,
// link-local, multicast, a cloud metadata endpoint) is left out, and of the others the first max
// are kept (nodelist.MaxExternal when max <= 0). What is left out comes back as skips. Host names
// are not resolved here: agents apply the same policy to what they resolve.
func LimitExternal(ext []nodelist.External, max int) ([]nodelist.External, []nodelist.Skip) {
	var (
		kept  []nodelist.External
		skips []nodelist.Skip
	)
	for _, e := range ext {
		if a, err := netip.ParseAddr(e.Host); err == nil {
			if why := nodelist.RefusedTarget(a, false); why != "" {
				skips = append(skips, nodelist.RefusedSkip(e.Name, a, why))
				continue
			}
		}
		kept = append(kept, e)
	}
	kept, over := nodelist.LimitExternal(kept, max)
	return kept, append(skips, over...)
}

// WatchExternal reads path now and every period until ctx ends and, when its content changed,
// passes the good result, within LimitExternal's limits (max targets), to set. A bad file is
// logged and counted, and the targets from the last good read stay; a target left out by the
// limits is logged and counted by reason each time the content changes.
func WatchExternal(ctx context.Context, path string, period time.Duration, max int, log *slog.Logger, m *Metrics, set func([]nodelist.External)) {
	var last []byte
	first := true
	for {
		data, err := os.ReadFile(path)
		if first || !bytes.Equal(data, last) {
			ext, err := decodeExternal(path, data, err)
			if err != nil {
				m.ExternalErrors.Inc()
				log.Error("external targets not updated; keeping the last good ones", "err", err)
			} else {
				ext, skips := LimitExternal(ext, max)
				for _, s := range skips {
					m.ExternalSkipped.WithLabelValues(s.Reason).Inc()
					log.Warn("external target skipped", "file", path, "name", s.Name, "reason", s.Reason, "detail", s.Detail)
				}
				log.Info("external targets loaded", "file", path, "targets", len(ext), "skipped", len(skips))
				set(ext)
			}
			last, first = data, false
		}
		t := time.NewTimer(period)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
