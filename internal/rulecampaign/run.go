package rulecampaign

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Fired is an alert that fired during a case, and when it first did (seconds from the start).
type Fired struct {
	Alert
	At float64
}

// Options say how to run promtool.
type Options struct {
	Promtool  string // path of promtool
	RulesPath string // the rules under test
	Dir       string // where the test files go
	Batch     int    // cases per promtool run
	Parallel  int    // promtool runs at once
}

var (
	gotLine  = regexp.MustCompile(`^\s*got:\s*(.*)$`)
	sample   = regexp.MustCompile(`(\{[^}]*\})\s+([-+.0-9eE]+)`)
	labelKV  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
	caseOnly = regexp.MustCompile(`^\{case="(\d+)"\}$`)
)

// Run evaluates the cases with promtool and returns, per case id, the alerts that fired.
func Run(ctx context.Context, o Options, cases []Case) (map[int][]Fired, error) {
	if o.Batch <= 0 {
		o.Batch = 20
	}
	if o.Parallel <= 0 {
		o.Parallel = 1
	}
	abs, err := filepath.Abs(o.RulesPath)
	if err != nil {
		return nil, fmt.Errorf("rules path: %w", err)
	}
	var (
		mu      sync.Mutex
		results = map[int][]Fired{}
		seen    = map[int]bool{}
		firstEr error
		wg      sync.WaitGroup
		sem     = make(chan struct{}, o.Parallel)
	)
	for start := 0; start < len(cases); start += o.Batch {
		end := min(start+o.Batch, len(cases))
		batch := cases[start:end]
		path := filepath.Join(o.Dir, fmt.Sprintf("cases-%04d.yml", start/o.Batch))
		if err := os.WriteFile(path, []byte(File(abs, batch)), 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out, _ := exec.CommandContext(ctx, o.Promtool, "test", "rules", path).CombinedOutput()
			// Kept next to the test file, so that a campaign cut short can be scored (Load).
			werr := os.WriteFile(path+".out", out, 0o644)
			fired, ids, err := parse(out)
			if err == nil {
				err = werr
			}
			if err == nil && len(ids) < len(batch) {
				err = fmt.Errorf("promtool evaluated %d of %d cases: %.2000s", len(ids), len(batch), out)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstEr == nil {
				firstEr = fmt.Errorf("%s: %w", path, err)
			}
			for id, f := range fired {
				results[id] = append(results[id], f...)
			}
			for id := range ids {
				seen[id] = true
			}
		}()
	}
	wg.Wait()
	if firstEr != nil {
		return nil, firstEr
	}
	for _, cs := range cases {
		if !seen[cs.ID] {
			return nil, fmt.Errorf("case %d was not evaluated by promtool (see the files in %s)", cs.ID, o.Dir)
		}
	}
	return results, nil
}

// Load reads the promtool reports a run left in dir (cases-*.yml.out) and returns the alerts
// that fired per case, and the cases that were evaluated: a campaign cut short can be scored.
func Load(dir string) (map[int][]Fired, map[int]bool, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "cases-*.yml.out"))
	if err != nil {
		return nil, nil, err
	}
	fired, seen := map[int][]Fired{}, map[int]bool{}
	for _, p := range paths {
		out, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, err
		}
		f, ids, err := parse(out)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p, err)
		}
		for id, v := range f {
			fired[id] = append(fired[id], v...)
		}
		for id := range ids {
			seen[id] = true
		}
	}
	return fired, seen, nil
}

// parse reads promtool's failure report: each "got:" line is one alert (or a case's sentinel).
func parse(out []byte) (map[int][]Fired, map[int]bool, error) {
	fired := map[int][]Fired{}
	ids := map[int]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	var errs []string
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "error") || strings.Contains(line, "err:") {
			errs = append(errs, strings.TrimSpace(line))
		}
		g := gotLine.FindStringSubmatch(line)
		if g == nil {
			continue
		}
		for _, m := range sample.FindAllStringSubmatch(g[1], -1) {
			if c := caseOnly.FindStringSubmatch(m[1]); c != nil {
				id, _ := strconv.Atoi(c[1])
				ids[id] = true
				continue
			}
			labels := map[string]string{}
			for _, kv := range labelKV.FindAllStringSubmatch(m[1], -1) {
				labels[kv[1]] = kv[2]
			}
			id, err := strconv.Atoi(labels["case"])
			if err != nil {
				return nil, nil, fmt.Errorf("unexpected promtool line %q", line)
			}
			at, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				return nil, nil, fmt.Errorf("unexpected value in %q", line)
			}
			fired[id] = append(fired[id], Fired{Alert: Alert{Name: labels["alertname"], Labels: labels}, At: at})
		}
	}
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("promtool: %s", strings.Join(errs, "; "))
	}
	return fired, ids, sc.Err()
}
