package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
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

// WatchExternal loads path now and every period until ctx ends, and passes each good result to
// set. A bad file is logged and counted, and the targets from the last good read stay.
func WatchExternal(ctx context.Context, path string, period time.Duration, log *slog.Logger, m *Metrics, set func([]nodelist.External)) {
	var last []byte
	first := true
	for {
		data, _ := os.ReadFile(path)
		if first || !bytes.Equal(data, last) {
			ext, err := LoadExternal(path)
			if err != nil {
				m.ExternalErrors.Inc()
				log.Error("external targets not updated; keeping the last good ones", "err", err)
			} else {
				log.Info("external targets loaded", "file", path, "targets", len(ext))
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
